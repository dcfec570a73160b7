"""Ingest against fake-gcs-server, the Pub/Sub emulator and a local HTTP server of TLC files.

The entry point is called with a CloudEvent built as functions-framework builds
it from a push; the end-to-end test drives the same function over HTTP.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chaos import source as chaos_source
from functions import ingest as ingest_function
from local.tlc_data import generate_month
from local.tlc_files import write_csv, write_month
from shared.core import clients, paths
from shared.core.errors import TransientError
from shared.ingest import month_claim
from tests.gcs_events import message_published_event
from tests.integration.conftest import TEMPLATE
from tests.integration.months import serve_month


def read_object(bucket, name):
    blob = bucket.get_blob(name)
    assert blob is not None, f"missing gs://{bucket.name}/{name}"
    with blob.open("rb") as handle:
        return pq.read_table(handle), blob


def test_real_sample_partition_rejects_and_rerun(fresh_bucket, tlc, real_yellow_sample):
    data_dir, _ = tlc
    served = gzip.compress(real_yellow_sample.read_bytes(), mtime=0)
    (data_dir / "yellow").mkdir()
    (data_dir / "yellow" / "yellow_tripdata_2021-01.csv.gz").write_bytes(served)

    ingest_function.handle(message_published_event({"date": "2021-01-01", "service": "yellow"}))

    day = dt.date(2021, 1, 1)
    trips, trips_blob = read_object(fresh_bucket, paths.trips_object("yellow", day))
    rejects, _ = read_object(fresh_bucket, paths.rejects_object("yellow", day))
    assert trips.num_rows == 96 and rejects.num_rows == 3
    assert set(rejects["reject_reason"].to_pylist()) == {"zero_passengers"}
    assert trips.num_rows + rejects.num_rows == 99  # every source row of that date is accounted for
    meta = trips_blob.metadata
    assert (meta["rows_written"], meta["rows_rejected"], meta["rows_read"]) == ("96", "3", "99")
    assert json.loads(meta["rejected_by_reason"]) == {"zero_passengers": 3}
    raw = fresh_bucket.get_blob("raw/yellow/yellow_tripdata_2021-01.csv.gz")
    assert raw.download_as_bytes() == served  # an exact raw copy
    assert meta["raw_generation"] == str(raw.generation)

    ingest_function.handle(message_published_event({"date": "2021-01-01", "service": "yellow"}))  # same message again
    again = fresh_bucket.get_blob(paths.trips_object("yellow", day))
    assert again.generation == trips_blob.generation, "an identical rerun must not rewrite the partition"
    assert fresh_bucket.get_blob(raw.name).generation == raw.generation, "the raw copy is not downloaded again"

    ingest_function.handle(message_published_event({"date": "2021-01-01", "service": "yellow", "force": True}))
    forced = fresh_bucket.get_blob(paths.trips_object("yellow", day))
    assert forced.generation != trips_blob.generation and forced.metadata["rows_written"] == "96"

    # The staging cache loses a day file (lifecycle): the month is split again, not failed.
    first_split = staged_manifest(fresh_bucket, 2021, 1)["split_id"]
    fresh_bucket.delete_blob(paths.staging_day("yellow", day, "trips", first_split))
    ingest_function.handle(message_published_event({"date": "2021-01-01", "service": "yellow", "force": True}))
    assert fresh_bucket.get_blob(paths.trips_object("yellow", day)).metadata["rows_written"] == "96"
    second_split = staged_manifest(fresh_bucket, 2021, 1)["split_id"]
    assert second_split != first_split
    assert fresh_bucket.get_blob(paths.staging_day("yellow", day, "trips", second_split)) is not None


def staged_manifest(bucket, year: int, month: int, service: str = "yellow") -> dict:
    return json.loads(bucket.blob(paths.staging_manifest(service, year, month)).download_as_bytes())


def split_ids(bucket) -> set[str]:
    """The splits that wrote files under staging/ (each writes under its own split=ID/)."""
    return {
        blob.name.split("split=", 1)[1].split("/", 1)[0]
        for blob in clients.storage().list_blobs(bucket.name, prefix="staging/")
        if "/split=" in blob.name
    }


def test_whole_month_conserves_every_source_row(fresh_bucket, tlc):
    data_dir, _ = tlc
    month = generate_month("yellow", 2021, 2, rows=8_000, seed=7)
    (data_dir / "yellow").mkdir()
    write_month(data_dir / "yellow" / "yellow_tripdata_2021-02.csv.gz", month, "csv.gz")

    written = rejected = 0
    manifest = paths.staging_manifest("yellow", 2021, 2)
    for day in range(1, 29):
        ingest_function.handle(message_published_event({"date": f"2021-02-{day:02d}", "service": "yellow"}))
        if day == 1:
            split_generation = fresh_bucket.get_blob(manifest).generation
        blob = fresh_bucket.get_blob(paths.trips_object("yellow", dt.date(2021, 2, day)))
        written += int(blob.metadata["rows_written"])
        rejected += int(blob.metadata["rows_rejected"])
    month_rejects, _ = read_object(fresh_bucket, paths.month_rejects_object("yellow", 2021, 2))
    assert set(month_rejects["reject_reason"].to_pylist()) <= {"outside_source_month", "missing_pickup_datetime"}
    assert month_rejects.num_rows > 0, "the generator plants pickups outside the month"
    assert written + rejected + month_rejects.num_rows == month.num_rows
    assert fresh_bucket.get_blob(manifest).generation == split_generation, "the month is split once"
    staged = list(clients.storage().list_blobs(fresh_bucket.name, prefix="staging/"))
    assert max(blob.generation for blob in staged) == split_generation, "nothing staged after the first date"


def test_a_few_unreadable_values_reject_their_rows_and_are_named_in_the_manifest(fresh_bucket, tlc):
    data_dir, _ = tlc
    month = generate_month("yellow", 2021, 3, rows=3_000, seed=11)
    fares = month["fare_amount"].to_pylist()
    on_the_10th = [i for i, t in enumerate(month["tpep_pickup_datetime"].to_pylist()) if t.startswith("2021-03-10 ")]
    for i in on_the_10th[:3]:
        fares[i] = "n/a"
    month = month.set_column(month.column_names.index("fare_amount"), "fare_amount", pa.array(fares, pa.string()))
    (data_dir / "yellow").mkdir()
    write_month(data_dir / "yellow" / "yellow_tripdata_2021-03.csv.gz", month, "csv.gz")

    ingest_function.handle(message_published_event({"date": "2021-03-10", "service": "yellow"}))

    trips, blob = read_object(fresh_bucket, paths.trips_object("yellow", dt.date(2021, 3, 10)))
    rejects, _ = read_object(fresh_bucket, paths.rejects_object("yellow", dt.date(2021, 3, 10)))
    assert json.loads(blob.metadata["rejected_by_reason"]).get("bad_value") == 3, blob.metadata
    assert rejects["reject_reason"].to_pylist().count("bad_value") == 3
    assert trips.num_rows + rejects.num_rows == len(on_the_10th)
    manifest = json.loads(fresh_bucket.blob(paths.staging_manifest("yellow", 2021, 3)).download_as_bytes())
    assert manifest["bad_values"] == {"fare_amount": {"rows": 3, "examples": ["n/a", "n/a", "n/a"]}}


def test_malformed_lines_are_kept_verbatim_beside_the_month_rejects(fresh_bucket, tlc):
    data_dir, _ = tlc
    month = generate_month("yellow", 2021, 4, rows=3_000, seed=5)
    sink = pa.BufferOutputStream()
    write_csv(month, sink)
    lines = sink.getvalue().to_pybytes().split(b"\n")
    broken = lines[100] + b",9,9"
    lines[100] = broken
    (data_dir / "yellow").mkdir()
    (data_dir / "yellow" / "yellow_tripdata_2021-04.csv.gz").write_bytes(gzip.compress(b"\n".join(lines)))

    ingest_function.handle(message_published_event({"date": "2021-04-02", "service": "yellow"}))

    kept = fresh_bucket.get_blob(paths.malformed_rows_object("yellow", 2021, 4))
    assert kept is not None and kept.download_as_bytes() == broken + b"\n"
    manifest = json.loads(fresh_bucket.blob(paths.staging_manifest("yellow", 2021, 4)).download_as_bytes())
    assert manifest["malformed_rows"] == 1 and manifest["source_rows"] == month.num_rows - 1
    assert fresh_bucket.get_blob(paths.trips_object("yellow", dt.date(2021, 4, 2))) is not None


@pytest.mark.parametrize(
    "fault, reason",
    [
        ("truncated-gzip", "corrupt_source"),
        ("wrong-header", "wrong_schema"),
        ("html", "not_a_csv_gz"),
        ("404", "source_not_found"),
    ],
)
def test_bad_sources_are_dead_lettered_and_write_no_partition(fresh_bucket, tlc, dead_letters, fault, reason):
    _, use = tlc
    use(prefix=f"faults/{fault}/")
    body = {"date": "2021-01-05", "service": "yellow"}

    ingest_function.handle(message_published_event(body))  # returns: acknowledged, not retried

    letters = [b for b in dead_letters(expected=1) if b["function"] == "ingest"]
    assert len(letters) == 1
    assert letters[0]["reason"] == reason and letters[0]["attributes"]["reason"] == reason
    original = base64.b64decode(letters[0]["event"]["data"]["message"]["data"])
    assert json.loads(original) == body
    assert letters[0]["context"]["date"] == "2021-01-05"
    assert not list(clients.storage().list_blobs(fresh_bucket.name, prefix="trips/"))
    assert not list(clients.storage().list_blobs(fresh_bucket.name, prefix="raw/")), "a bad raw copy is not kept as raw"
    staged = [b.name for b in clients.storage().list_blobs(fresh_bucket.name, prefix="staging/")]
    recorded = [] if reason == "source_not_found" else [paths.staging_failure("yellow", 2021, 1)]
    assert staged == recorded, "a failed split leaves no staged file, whole or truncated, and no claim: its record only"


@pytest.mark.parametrize("kind", ["html", "truncated", "cut"])
def test_a_source_fault_on_the_first_download_heals_in_the_same_call(fresh_bucket, settings_env, tmp_path, kind):
    """Found by `python -m chaos`: an error page served with 200 (html) or a gzip cut short with a
    matching Content-Length (truncated) on the month's one download dead-lettered the date
    holding the claim. Now the download is retried (html, and cut: a short body) or the month
    downloaded once more after the corrupt split (truncated), and the date succeeds first time."""
    source = chaos_source.serve(tmp_path / "source", seed=1, rate=0.0, hang_seconds=1, rows_per_day=50)
    source.kinds, source.enabled = (kind,), True  # the first request of the month gets the fault
    settings_env(
        SOURCE_URL_TEMPLATE=TEMPLATE.format(base=f"http://127.0.0.1:{source.server_address[1]}", prefix=""),
        DOWNLOAD_MAX_ATTEMPTS="2",
        DOWNLOAD_TIMEOUT_SECONDS="5",
    )
    try:
        ingest_function.handle(now_event("2021-10-05"))
    finally:
        source.shutdown()
    assert [f["kind"] for f in source.injected] == [kind]
    assert fresh_bucket.get_blob(paths.trips_object("yellow", dt.date(2021, 10, 5))) is not None, (
        "written by this one call (a dead-lettered date writes no partition)"
    )


def test_invalid_message_is_dead_lettered_with_field_and_value(fresh_bucket, tlc, dead_letters):
    ingest_function.handle(message_published_event({"date": "2021-02-30", "service": "yellow"}))
    letters = dead_letters(expected=1)
    assert letters[0]["error"]["field"] == "date" and letters[0]["error"]["value"] == "2021-02-30"
    assert letters[0]["reason"] == "invalid_input"


def test_transient_server_error_is_retried_within_the_call(fresh_bucket, tlc):
    data_dir, use = tlc
    use(prefix="faults/500-once/")
    ingest_function.handle(message_published_event({"date": "2021-01-03", "service": "yellow"}))
    assert fresh_bucket.get_blob(paths.trips_object("yellow", dt.date(2021, 1, 3))) is not None


def test_transient_failure_is_retried_then_dead_lettered_once_too_old(fresh_bucket, tlc, dead_letters, settings_env):
    """Raise = the platform redelivers; past MAX_EVENT_AGE_SECONDS the event is dead-lettered instead."""
    _, use = tlc
    use(prefix="faults/500-once/")
    settings_env(DOWNLOAD_MAX_ATTEMPTS="1", MAX_EVENT_AGE_SECONDS="600")
    fresh = dt.datetime.now(dt.UTC).isoformat()
    event = message_published_event({"date": "2021-01-06", "service": "yellow"}, publish_time=fresh)
    with pytest.raises(TransientError):
        ingest_function.handle(event)  # first delivery: the server answers 500
    ingest_function.handle(event)  # the redelivery succeeds
    assert fresh_bucket.get_blob(paths.trips_object("yellow", dt.date(2021, 1, 6))) is not None

    old = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    # Another month: a path the server has not failed yet.
    ingest_function.handle(message_published_event({"date": "2021-03-07", "service": "yellow"}, publish_time=old))
    letters = dead_letters(expected=1)
    assert letters[0]["reason"] == "max_event_age_exceeded"
    assert letters[0]["error"]["last_reason"] == "download_failed"


def now_event(day: str, **extra):
    return message_published_event(
        {"date": day, "service": "yellow", **extra}, publish_time=dt.datetime.now(dt.UTC).isoformat()
    )


def test_dates_arriving_together_all_succeed_first_time_and_the_month_is_split_once(fresh_bucket, tlc):
    """A backfill's dates arrive at once: one instance splits, the others wait for its manifest."""
    data_dir, _ = tlc
    month = serve_month(data_dir, 2021, 5, rows=150_000)
    days = [f"2021-05-{d:02d}" for d in range(1, 13)]
    with ThreadPoolExecutor(max_workers=len(days)) as pool:  # raises here if any delivery failed
        list(pool.map(lambda day: ingest_function.handle(now_event(day)), days))

    manifest = staged_manifest(fresh_bucket, 2021, 5)
    assert split_ids(fresh_bucket) == {manifest["split_id"]}, "the month is split exactly once"
    for day in days:
        blob = fresh_bucket.get_blob(paths.trips_object("yellow", dt.date.fromisoformat(day)))
        assert blob is not None and blob.metadata["rows_written"] == str(manifest["days"][day]["rows_written"])
    source_rows = month.num_rows
    assert manifest["source_rows"] == source_rows
    assert sum(d["rows_read"] for d in manifest["days"].values()) + manifest["month_rejected_rows"] == source_rows
    assert fresh_bucket.get_blob(paths.staging_claim("yellow", 2021, 5)) is None, "the claim is released"


def test_a_live_claim_is_waited_for_then_retried_after_split_wait_seconds(fresh_bucket, tlc, settings_env):
    data_dir, _ = tlc
    serve_month(data_dir, 2021, 6, rows=2_000)
    settings_env(SPLIT_WAIT_SECONDS="2")
    claim = fresh_bucket.blob(paths.staging_claim("yellow", 2021, 6))
    claim.upload_from_string(b"{}")  # another instance is splitting June (and its heartbeat is fresh)

    with pytest.raises(TransientError) as err:
        ingest_function.handle(now_event("2021-06-01"))
    assert err.value.reason == "month_split_in_progress"
    assert fresh_bucket.get_blob(paths.staging_manifest("yellow", 2021, 6)) is None

    claim.delete()  # the other instance stopped without a manifest: the redelivery splits
    ingest_function.handle(now_event("2021-06-01"))
    assert fresh_bucket.get_blob(paths.trips_object("yellow", dt.date(2021, 6, 1))) is not None
    assert fresh_bucket.get_blob(paths.staging_claim("yellow", 2021, 6)) is None


def test_a_claim_released_without_a_manifest_is_taken_by_a_waiting_date(fresh_bucket, tlc):
    """The holder failed (its split raised): a date waiting on it splits the month itself, in the same call."""
    data_dir, _ = tlc
    serve_month(data_dir, 2021, 7, rows=2_000)
    claim = fresh_bucket.blob(paths.staging_claim("yellow", 2021, 7))
    claim.upload_from_string(b"{}")
    releaser = threading.Timer(2.0, claim.delete)
    releaser.start()
    try:
        ingest_function.handle(now_event("2021-07-04"))
    finally:
        releaser.join()
    assert fresh_bucket.get_blob(paths.trips_object("yellow", dt.date(2021, 7, 4))) is not None
    assert len(split_ids(fresh_bucket)) == 1


def test_a_stale_claim_of_a_crashed_holder_is_taken_over(fresh_bucket, tlc, monkeypatch):
    data_dir, _ = tlc
    serve_month(data_dir, 2021, 8, rows=2_000)
    monkeypatch.setattr(month_claim, "STALE_SECONDS", 1.0)  # instead of a minute without a heartbeat
    stale = fresh_bucket.blob(paths.staging_claim("yellow", 2021, 8))
    stale.upload_from_string(b"{}")
    time.sleep(1.5)

    ingest_function.handle(now_event("2021-08-02"))
    assert fresh_bucket.get_blob(paths.trips_object("yellow", dt.date(2021, 8, 2))) is not None
    assert fresh_bucket.get_blob(paths.staging_claim("yellow", 2021, 8)) is None


def test_a_new_split_deletes_the_splits_it_supersedes(fresh_bucket, tlc):
    """Found by `python -m chaos`: the raw copy deleted (the lifecycle rule) and downloaded again
    made a second split, and the first stayed under staging/ for good. Also an abandoned split
    (its instance killed half way) is never named by a manifest: the next split deletes it."""
    data_dir, _ = tlc
    serve_month(data_dir, 2021, 9, rows=2_000)
    abandoned = fresh_bucket.blob(paths.staging_day("yellow", dt.date(2021, 9, 1), "trips", "abandoned0"))
    abandoned.upload_from_string(b"half a file")
    ingest_function.handle(now_event("2021-09-01"))
    first = staged_manifest(fresh_bucket, 2021, 9)["split_id"]
    assert split_ids(fresh_bucket) == {first}, "the abandoned split is deleted"

    raw_name = paths.raw_object("yellow", "yellow_tripdata_2021-09.csv.gz")
    fresh_bucket.delete_blob(raw_name)  # as the lifecycle rule does after raw_delete_after_days
    ingest_function.handle(now_event("2021-09-02"))
    second = staged_manifest(fresh_bucket, 2021, 9)["split_id"]
    assert second != first, "a new raw copy is split again"
    assert split_ids(fresh_bucket) == {second}
    ingest_function.handle(now_event("2021-09-01"))  # derived from the old raw copy: rewritten from the new split
    assert split_ids(fresh_bucket) == {second}, "the date reads the current split, no third split"
    trips = fresh_bucket.get_blob(paths.trips_object("yellow", dt.date(2021, 9, 1)))
    assert trips.metadata["raw_generation"] == str(fresh_bucket.get_blob(raw_name).generation)


def test_a_message_too_large_for_a_dead_letter_is_kept_whole_in_the_lake(fresh_bucket, tlc, dead_letters):
    """A 6 MB `date` made the dead letter exceed Pub/Sub's 10 MB (the event is base64 inside it):
    nothing structured was published. Now the message is refused for its size (over 64 KiB, before
    it is parsed), the error names that size, and the original event is stored."""
    body = {"date": "9" * 6_000_000, "service": "yellow"}
    ingest_function.handle(message_published_event(body))  # acknowledged: bad input is never retried

    (letter,) = [b for b in dead_letters(expected=1, timeout=60) if b["function"] == "ingest"]
    assert letter["reason"] == "message_too_large" and letter["error"]["field"] == "message.data"
    assert letter["error"]["value"] == f"{len(json.dumps(body).encode())} bytes"
    stored = letter["event"]["stored_at"]
    assert stored.startswith(f"gs://{fresh_bucket.name}/quarantine/events/ingest/")
    record = json.loads(fresh_bucket.blob(stored.split("/", 3)[3]).download_as_bytes())
    assert json.loads(base64.b64decode(record["data"]["message"]["data"])) == body


def push_body(body: dict, attempt: int) -> dict:
    """What Google's push (and the local relay) POSTs, with a dead-letter policy: deliveryAttempt."""
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    return {
        "message": {
            "data": base64.b64encode(json.dumps(body).encode()).decode(),
            "attributes": {},
            "messageId": f"m{attempt}",
            "message_id": f"m{attempt}",
            "publishTime": now,
            "publish_time": now,
        },
        "subscription": "projects/local-taxi/subscriptions/taxi-ingest-push",
        "deliveryAttempt": attempt,
    }


def test_the_last_delivery_attempt_is_dead_lettered_with_its_reason_not_raised(
    fresh_bucket, tlc, dead_letters, settings_env
):
    """Retry budgets agree: on the subscription's last attempt the function dead-letters a transient
    failure itself (structured, with the reason), instead of raising into Pub/Sub's raw copy."""
    import functions_framework

    _, use = tlc
    use(prefix="faults/slow/")  # the source hangs past the download timeout: transient
    settings_env(DOWNLOAD_TIMEOUT_SECONDS="1", DOWNLOAD_MAX_ATTEMPTS="1", MAX_DELIVERY_ATTEMPTS="5")
    app = functions_framework.create_app(
        target="ingest", source=str(Path(__file__).parents[2] / "main.py"), signature_type="cloudevent"
    )
    client = app.test_client()
    body = {"date": "2021-01-09", "service": "yellow"}

    assert client.post("/", json=push_body(body, attempt=4)).status_code == 500  # raised: redelivered
    assert client.post("/", json=push_body(body, attempt=5)).status_code in (200, 204)  # acknowledged

    (letter,) = [b for b in dead_letters(expected=1, timeout=30) if b["function"] == "ingest"]
    assert letter["reason"] == "retries_exhausted"
    assert letter["error"]["last_reason"] == "download_failed" and letter["error"]["attempts"] == 5
    assert letter["context"]["date"] == "2021-01-09"
