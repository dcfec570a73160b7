"""The local stack's IAM enforcement (local/stack/iam_*.py): what it reads from iam.tf, how it maps
calls to permissions and resources, how it refuses, and that every grant is needed both ways.

`test_removing_any_grant_denies_a_call_the_suite_made` replays the calls the whole suite made
(local/stack/iam_data/observed_calls.json, written by `python -m local.stack.iam_report
--write-observed` after `./local_emulator.sh test`) against the grants parsed from iam.tf with one
grant removed at a time: each removal must refuse at least one of them, naming function, method,
resource and permission; a grant no call needs must be listed, with its reason, in iam_report.KEPT.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("hcl2", reason="python-hcl2 is not installed (requirements-dev.txt)")

from local.stack import iam_enforce, iam_policy, iam_report  # noqa: E402
from local.stack.iam_requests import bigquery_call, call_for, job_checks  # noqa: E402

ENV = {
    "GCP_PROJECT": "p",
    "LAKE_BUCKET": "lake",
    "BQ_DATASET": "nyc_taxi",
    "INGEST_TOPIC": "in",
    "BACKFILL_TOPIC": "bf",
    "DEAD_LETTER_TOPIC": "dl",
    "LAKE_EVENTS_TOPIC": "ev",
}


@pytest.fixture(autouse=True)
def local_names(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TAXI_IAM_ALLOWLIST", "0")


def never(bucket: str, name: str) -> bool:
    return False


def always(bucket: str, name: str) -> bool:
    return True


def test_grants_are_read_with_role_resource_and_condition():
    grants = iam_policy.load()
    runs = [g for g in grants if g.address.startswith("google_storage_bucket_iam_member.loaders_write_runs")]
    assert {g.function for g in runs} == {"load_bigquery", "load_postgres", "backfill", "backfill_http"}
    assert all(g.prefixes == ("runs/",) and g.role == "roles/storage.objectUser" for g in runs)
    assert {g.function for g in grants} == set(iam_policy.FUNCTIONS)
    job_users = {g.function for g in grants if g.role == "roles/bigquery.jobUser" and g.kind == "project"}
    assert job_users == {"load_bigquery", "backfill", "backfill_http", "status"}


def test_an_unknown_condition_fails_loudly():
    text = iam_policy.IAM_TF.read_text().replace('/objects/runs/\\")', '/objects/runs/\\") && request.time < x', 1)
    with pytest.raises(iam_policy.PolicyError, match="loaders_write_runs"):
        iam_policy.parse(text)


def test_create_dataset_is_checked_on_the_project_even_with_data_editor_on_the_dataset():
    call = bigquery_call("POST", "/bigquery/v2/projects/p/datasets", b'{"datasetReference": {"datasetId": "nyc_taxi"}}')
    decision = iam_enforce.decide("load_bigquery", call)
    assert call.method == "bigquery.datasets.insert"
    assert decision.missing == (("bigquery.datasets.create", "projects/p"),)
    body = iam_enforce.error_body(decision)["error"]
    assert body["code"] == 403 and body["status"] == "PERMISSION_DENIED"
    assert "bigquery.datasets.create permission in project p" in body["message"]
    assert "load_bigquery" in decision.explain() and "bigquery.datasets.insert" in decision.explain()


def test_a_known_defect_is_allowlisted_by_name_only_when_the_list_is_on(monkeypatch):
    """The list is empty since issue 20's fixes merged; the mechanism still names what it lets through."""
    call = bigquery_call("POST", "/bigquery/v2/projects/p/datasets", b"{}")
    monkeypatch.setattr(
        iam_enforce,
        "KNOWN_DEFECTS",
        {("load_bigquery", "bigquery.datasets.insert", "bigquery.datasets.create", "projects/"): "issue N: why"},
    )
    monkeypatch.setenv("TAXI_IAM_ALLOWLIST", "1")
    assert iam_enforce.decide("load_bigquery", call).allowlisted == "issue N: why"
    assert iam_enforce.decide("status", call).allowlisted is None  # the entry names its function
    monkeypatch.setenv("TAXI_IAM_ALLOWLIST", "0")
    assert iam_enforce.decide("load_bigquery", call).allowlisted is None


def test_create_dataset_put_back_would_be_refused(monkeypatch):
    """Issue 20 defect 1: nothing allowlists the loader's create_dataset any more."""
    monkeypatch.setenv("TAXI_IAM_ALLOWLIST", "1")
    decision = iam_enforce.decide("load_bigquery", bigquery_call("POST", "/bigquery/v2/projects/p/datasets", b"{}"))
    assert not decision.allowed and decision.allowlisted is None
    assert [p for p, _ in decision.missing] == ["bigquery.datasets.create"]


def test_object_writes_follow_the_prefix_condition_and_overwrites_need_delete():
    upload = "http://gcs/upload/storage/v1/b/lake/o?uploadType=multipart&name={}"
    ledger = call_for("POST", upload.format("runs/x.json"), None, never)
    trips = call_for("POST", upload.format("trips/yellow/pickup_date=2021-01-01/data.parquet"), None, always)
    assert iam_enforce.decide("load_postgres", ledger).allowed
    denied = iam_enforce.decide("load_postgres", trips)
    assert [p for p, _ in denied.missing] == ["storage.objects.create", "storage.objects.delete"]
    assert iam_enforce.decide("ingest", trips).allowed
    body = iam_enforce.error_body(denied)["error"]
    assert body["errors"][0]["reason"] == "forbidden" and "'storage.objects.create' denied" in body["message"]
    no_overwrite = call_for("POST", upload.format("trips/a") + "&ifGenerationMatch=0", None, always)
    assert [p for p, _ in no_overwrite.checks] == ["storage.objects.create"]


def test_a_multipart_upload_is_named_from_its_metadata_part():
    body = b'--b\r\ncontent-type: application/json\r\n\r\n{"name": "runs/a.json"}\r\n--b\r\n\r\ndata\r\n--b--'
    call = call_for("POST", "http://gcs/upload/storage/v1/b/lake/o?uploadType=multipart", body, never)
    assert call.resource == "projects/_/buckets/lake/objects/runs/a.json"


def test_a_load_job_needs_its_table_and_its_source_objects_as_the_caller():
    job = {
        "configuration": {
            "load": {
                "destinationTable": {"projectId": "p", "datasetId": "nyc_taxi", "tableId": "yellow_trips$20210101"},
                "sourceUris": ["gs://lake/trips/yellow/pickup_date=2021-01-01/data.parquet"],
                "createDisposition": "CREATE_NEVER",
            }
        }
    }
    checks = job_checks("p", job)
    assert ("bigquery.jobs.create", "projects/p") in checks
    assert ("bigquery.tables.updateData", "projects/p/datasets/nyc_taxi/tables/yellow_trips") in checks
    assert (
        "storage.objects.get",
        "projects/_/buckets/lake/objects/trips/yellow/pickup_date=2021-01-01/data.parquet",
    ) in checks
    call = bigquery_call("POST", "/bigquery/v2/projects/p/jobs", json.dumps(job).encode())
    assert iam_enforce.decide("load_bigquery", call).allowed
    assert not iam_enforce.decide("status", call).allowed  # a reader may not write the table


def test_a_query_reads_and_writes_the_tables_it_names():
    sql = (
        "BEGIN TRANSACTION;\nDELETE FROM `p.nyc_taxi.t` WHERE x;\n"
        "INSERT INTO `p.nyc_taxi.t` (a)\nSELECT a FROM `p.nyc_taxi._s`;"
    )
    checks = job_checks("p", {"configuration": {"query": {"query": sql}}})
    assert ("bigquery.tables.updateData", "projects/p/datasets/nyc_taxi/tables/t") in checks
    assert ("bigquery.tables.getData", "projects/p/datasets/nyc_taxi/tables/_s") in checks
    assert ("bigquery.tables.getData", "projects/p/datasets/nyc_taxi/tables/t") not in checks


def test_every_permission_a_method_is_mapped_to_is_in_googles_list_for_it():
    calls = [
        call_for("GET", "http://g/storage/v1/b/lake/o", None, never),
        call_for("GET", "http://g/storage/v1/b/lake/o/a%2Fb", None, never),
        call_for("GET", "http://g/download/storage/v1/b/lake/o/a%2Fb?alt=media", None, never),
        call_for("DELETE", "http://g/storage/v1/b/lake/o/a", None, never),
        call_for("PATCH", "http://g/storage/v1/b/lake/o/a", None, never),
        call_for("GET", "http://g/storage/v1/b/lake", None, never),
        call_for("POST", "http://g/upload/storage/v1/b/lake/o?name=a", None, always),
        call_for("POST", "http://g/storage/v1/b/lake/o/a/rewriteTo/b/lake/o/a", None, always),
        call_for("POST", "http://g/storage/v1/b/lake/o/a/copyTo/b/lake/o/b", None, always),
    ] + [
        bigquery_call(verb, f"/bigquery/v2/projects/p{rest}", None)
        for verb, rest in [
            ("POST", "/datasets"),
            ("GET", "/datasets/d"),
            ("GET", "/datasets/d/tables"),
            ("POST", "/datasets/d/tables"),
            ("GET", "/datasets/d/tables/t"),
            ("PATCH", "/datasets/d/tables/t"),
            ("DELETE", "/datasets/d/tables/t"),
        ]
    ]
    methods = iam_policy.method_permissions()
    for call in calls:
        assert call is not None and call.checks, call
        for permission, _ in call.checks:
            assert permission in methods[call.method], (call.method, permission)


def test_a_request_no_method_matches_is_denied_not_passed():
    call = call_for("POST", "http://g/storage/v1/b/lake/o/a/compose", None, never)
    decision = iam_enforce.decide("ingest", call)
    assert call.method.startswith("unmapped") and not decision.allowed


def test_removing_any_grant_denies_a_call_the_suite_made():
    observed = json.loads(iam_report.OBSERVED.read_text())
    placeholders = {setting: "{" + setting + "}" for _, setting in iam_policy.RESOURCE_SETTINGS.values()}
    grants = list(iam_policy.load())
    unneeded = []
    for removed in grants:
        rest = [g for g in grants if g is not removed]
        refused = [
            f"{call['function']} {call['method']} lacks {permission} on {resource}"
            for call in observed
            for permission, resource in call["checks"]
            if call["function"] == removed.function
            and not [
                g for g in rest if g.function == removed.function and _grants(g, permission, resource, placeholders)
            ]
        ]
        if not refused and removed.address not in iam_report.KEPT:
            unneeded.append(removed.describe())
    assert not unneeded, (
        "grants no call of the suite needs (remove them, or say why in iam_report.KEPT):\n" + "\n".join(unneeded)
    )


def _grants(grant: iam_policy.Grant, permission: str, resource: str, env: dict[str, str]) -> bool:
    return permission in iam_policy.role_permissions()[grant.role] and grant.covers(resource, env)


def test_the_observed_calls_are_all_allowed_by_iam_tf_as_it_is():
    placeholders = {setting: "{" + setting + "}" for _, setting in iam_policy.RESOURCE_SETTINGS.values()}
    grants = iam_policy.load()
    for call in json.loads(iam_report.OBSERVED.read_text()):
        for permission, resource in call["checks"]:
            assert any(
                g.function == call["function"] and _grants(g, permission, resource, placeholders) for g in grants
            ), (call, permission, resource)


def test_each_function_may_store_large_events_under_its_own_quarantine_prefix_only(monkeypatch):
    """Issue 20 defect 5: the backfill's and the loaders' dead letters keep events over 1 MB in the lake."""
    monkeypatch.setenv("TAXI_IAM_ALLOWLIST", "1")
    upload = "http://gcs/upload/storage/v1/b/lake/o?uploadType=multipart&name={}"
    for function in ("backfill", "load_bigquery", "load_postgres"):
        own = call_for("POST", upload.format(f"quarantine/events/{function}/1.json"), None, never)
        assert iam_enforce.decide(function, own).allowed, function
    other = iam_enforce.decide(
        "backfill", call_for("POST", upload.format("quarantine/events/ingest/1.json"), None, never)
    )
    trips = iam_enforce.decide("backfill", call_for("POST", upload.format("trips/a"), None, never))
    assert not other.allowed and not trips.allowed and other.allowlisted is None


def test_writing_the_calls_of_a_few_tests_keeps_the_stored_ones():
    stored = json.loads(iam_report.OBSERVED.read_text())
    one_new = {"function": "ingest", "method": "storage.objects.get", "checks": [["storage.objects.get", "b/x"]]}
    merged = iam_report.merged(stored, [one_new, stored[0]])
    assert len(merged) == len(stored) + 1 and one_new in merged
    assert all(call in merged for call in stored)
    assert iam_report.merged(stored, []) == stored  # the stored order is the order written
