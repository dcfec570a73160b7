"""The BigQuery requests of load_bigquery and status, checked against bigquery.v2's discovery document.

The code runs as it does in Google Cloud, on the real client library, whose transport is recorded
(tests/contracts/bigquery_requests.py); each request body (jobs.insert's Job: load, query; the
tables and datasets calls) is validated against the request schema of the discovery method its
HTTP method and path name. The day replace is the one path Google Cloud runs (a load job into
the day's partition decorator); the local stack bridges it for the emulator, which knows no
decorators, so the requests the emulator never sees are checked here.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from google.cloud import bigquery as bq

from shared.core import clients
from shared.core.evolved_columns import lake_field
from shared.core.schemas import arrow_schema
from shared.core.settings import LOAD_BIGQUERY, Settings
from shared.load import bigquery as bql
from shared.load import partition as loading
from shared.operate import status_reads
from tests.contracts.bigquery_requests import UPLOAD_NOT_REQUIRED, FakeBigQuery, Request, upload_method
from tests.contracts.discovery import document

PROJECT = "contract-test-project"
ENV = {"GCP_PROJECT": PROJECT, "LAKE_BUCKET": "lake", "DEAD_LETTER_TOPIC": "dl"}
DAY = dt.date(2021, 1, 15)
NAME = "trips/yellow/pickup_date=2021-01-15/data.parquet"
LOAD = loading.PartitionLoad(
    loading.ObjectEvent("lake", NAME, 1716912345678901), loading.paths.Partition("trips", "yellow", DAY)
)


def problems_of(requests: list[Request]) -> list[str]:
    """Every problem of every request that has a body, named by the request."""
    api = document("bigquery.v2")
    found = []
    for request in requests:
        if request.body is None:
            continue
        upload = upload_method(request.path)
        method = upload or api.method_for(request.method, request.path)
        for problem in api.validate_request(request.body, method, "body"):
            if not (upload and problem.path in UPLOAD_NOT_REQUIRED and "required" in problem.message):
                found.append(f"{request} ({method}) {problem}")
    return found


def run_load(monkeypatch, existing_table=None, added: list[pa.Field] | None = None) -> FakeBigQuery:
    fake = FakeBigQuery(PROJECT, existing_table)
    monkeypatch.setattr(clients, "bigquery", lambda: fake.client)
    monkeypatch.setattr(bql, "_ensured", set(), raising=False)
    settings = Settings.from_env(ENV, function=LOAD_BIGQUERY)
    schema = pa.schema([*arrow_schema("yellow"), *(added or [])])
    data = loading.PartitionData(schema.empty_table(), b"PAR1 parquet bytes PAR1")
    bql.load_partition(LOAD, data, settings, {})
    return fake


def job_configurations(fake: FakeBigQuery) -> list[dict]:
    return [r.body["configuration"] for r in fake.requests if r.body and "configuration" in r.body]


def test_load_requests_match_the_discovery_document(monkeypatch):
    fake = run_load(monkeypatch)
    assert job_configurations(fake), "the day replace sent no job: nothing was checked"
    assert not problems_of(fake.requests), "\n".join(problems_of(fake.requests))


def test_the_day_is_loaded_into_its_partition(monkeypatch):
    """One load job, from the object's URI into table$YYYYMMDD, replacing it."""
    (load,) = [c["load"] for c in job_configurations(run_load(monkeypatch)) if "load" in c]
    assert load["destinationTable"]["tableId"] == "yellow_trips$20210115"
    assert load["sourceUris"] == [f"gs://lake/{NAME}"]
    assert load["writeDisposition"] == "WRITE_TRUNCATE" and load["sourceFormat"] == "PARQUET"


def test_an_existing_table_with_old_descriptions_is_patched_with_a_valid_body(monkeypatch):
    settings = Settings.from_env(ENV, function=LOAD_BIGQUERY)
    existing = bql.table_definition(settings, "yellow").to_api_repr()
    for field in existing["schema"]["fields"]:
        field["description"] = "old"
    fake = run_load(monkeypatch, existing_table=existing)
    patches = [r for r in fake.requests if r.method == "PATCH"]
    assert patches, "the table was not patched: the PATCH body was not checked"
    assert not problems_of(fake.requests), "\n".join(problems_of(fake.requests))


def test_a_column_added_by_schema_evolution_is_patched_in_and_loaded_with_valid_bodies(monkeypatch):
    """Schema evolution: the partition's added column becomes a described NULLABLE field (tables.patch),
    and the load job into the partition carries the table's schema with ALLOW_FIELD_ADDITION."""
    added = lake_field("street_repair_fee", "float", "Street_Repair_Fee", 2025, 6)
    fake = run_load(monkeypatch, added=[added])
    (patch,) = [r for r in fake.requests if r.method == "PATCH"]
    field = patch.body["schema"]["fields"][-1]
    assert (field["name"], field["type"], field["mode"]) == ("street_repair_fee", "FLOAT64", "NULLABLE")
    assert "2025-06" in field["description"] and "Street_Repair_Fee" in field["description"]
    (load,) = [c["load"] for c in job_configurations(fake) if "load" in c]
    assert load["schemaUpdateOptions"] == ["ALLOW_FIELD_ADDITION"]
    assert load["schema"]["fields"][-1]["name"] == "street_repair_fee"
    assert not problems_of(fake.requests), "\n".join(problems_of(fake.requests))


def test_the_status_query_matches_the_discovery_document():
    settings = Settings.from_env(ENV, function=LOAD_BIGQUERY)
    fake = FakeBigQuery(PROJECT, existing_table=bql.table_definition(settings, "yellow").to_api_repr())
    table = status_reads.bigquery_table(settings, "yellow")
    assert status_reads.read_bigquery(fake.client, table, DAY, DAY + dt.timedelta(days=30)) == {}
    (query,) = [c["query"] for c in job_configurations(fake)]
    assert [p["name"] for p in query["queryParameters"]] == ["start", "end"]
    assert not problems_of(fake.requests), "\n".join(problems_of(fake.requests))


def test_a_wrong_job_configuration_is_caught():
    """The same path with a field BigQuery does not have: the check above can fail."""
    destination = bq.TableReference.from_string(f"{PROJECT}.nyc_taxi.yellow_trips$20210115")
    config = bql.load_config(LOAD)
    job = bq.LoadJob("j", [LOAD.uri], destination, FakeBigQuery(PROJECT).client, config).to_api_repr()
    assert not problems_of([Request("POST", f"/projects/{PROJECT}/jobs", job)])
    job["configuration"]["load"]["writeDisposition"] = "WRITE_REPLACE"
    job["configuration"]["load"]["partitionDecorator"] = True
    problems = problems_of([Request("POST", f"/projects/{PROJECT}/jobs", job)])
    assert len(problems) == 2, "\n".join(problems)
    assert any("body.configuration.load.writeDisposition: 'WRITE_REPLACE' is not one of" in p for p in problems)
    assert any("body.configuration.load.partitionDecorator: unknown field" in p for p in problems)
