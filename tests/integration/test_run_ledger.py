"""The run ledger against the real stack: what status says of dates in flight, retried or given up on.

The functions are called in-process with CloudEvents as functions-framework builds them, on a
bucket of the test's own in fake-gcs-server; status reads that bucket, the BigQuery emulator
and PostgreSQL, as deployed. Dates are of 2019, which no other test loads.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from functions import ingest as ingest_function
from functions import load_bigquery, load_postgres
from shared.core import ledger_record, paths
from shared.core.errors import TransientError
from shared.core.settings import Settings
from shared.operate import status, status_reads
from tests.gcs_events import gcs_finalized_event, message_published_event
from tests.integration.months import serve_month

SERVICE = "yellow"


def now_event(day: dt.date, **extra):
    return message_published_event(
        {"date": day.isoformat(), "service": SERVICE, **extra}, publish_time=dt.datetime.now(dt.UTC).isoformat()
    )


def days(bucket, start: dt.date, end: dt.date) -> dict[str, status.DayStatus]:
    report = status_reads.report(SERVICE, start, end, Settings.from_env(function="status"), bucket=bucket)
    return {day.date.isoformat(): day for day in report.days}


def record(bucket, day: dt.date, function: str = "ingest") -> dict:
    import json

    blob = bucket.get_blob(paths.run_record(SERVICE, day, function, "1"))
    assert blob is not None, f"no {function} record for {day}"
    return json.loads(blob.download_as_bytes())


def test_retried_dead_lettered_loaded_and_never_asked(fresh_bucket, tlc, settings_env, dead_letters):  # noqa: F811
    _, use = tlc
    retried, lost, loaded, never = (dt.date(2019, 3, d) for d in (4, 5, 6, 7))

    # A transient failure: the TLC host answers 500 once; the download is not retried in the call.
    use(prefix="faults/500-once/")
    settings_env(DOWNLOAD_MAX_ATTEMPTS="1")
    with pytest.raises(TransientError):
        ingest_function.handle(now_event(retried))
    first = record(fresh_bucket, retried)
    assert (first["outcome"], first["attempt"], first["reason"]) == ("retrying", 1, "download_failed")
    assert first["error"] and len(first["error"]) <= ledger_record.MAX_ERROR_CHARS

    # A permanent failure: the month is not on the host.
    use(prefix="faults/404/")
    ingest_function.handle(now_event(lost))  # acked
    assert [b["reason"] for b in dead_letters(expected=1)] == ["source_not_found"]

    seen = days(fresh_bucket, retried, never)
    assert seen[retried.isoformat()].state == "retrying"
    assert seen[retried.isoformat()].label == "retrying (attempt 1, download_failed)"
    assert seen[lost.isoformat()].state == "dead_lettered"
    assert seen[lost.isoformat()].label == "dead_lettered (source_not_found)"
    assert seen[never.isoformat()].state == "missing"

    # The redelivery of the retried event succeeds: attempt 2, and the date is no longer in flight.
    use(prefix="faults/500-once/")
    ingest_function.handle(now_event(retried))
    again = record(fresh_bucket, retried)
    assert (again["outcome"], again["attempt"], again["history"][-1]["outcome"]) == ("succeeded", 2, "retrying")
    assert days(fresh_bucket, retried, retried)[retried.isoformat()].state == "partial"  # the loaders' turn

    # A success, loaded by both loaders: complete, each function's latest attempt on record.
    use()
    ingest_function.handle(now_event(loaded))
    trips = fresh_bucket.get_blob(paths.trips_object(SERVICE, loaded))
    finalize = gcs_finalized_event(fresh_bucket.name, trips.name, trips.generation)
    load_bigquery.handle(finalize)
    load_postgres.handle(finalize)
    day = days(fresh_bucket, loaded, never)
    assert day[loaded.isoformat()].state == "complete"
    assert {(r.function, r.outcome) for r in day[loaded.isoformat()].runs} == {
        ("ingest", "succeeded"),
        ("load_bigquery", "succeeded"),
        ("load_postgres", "succeeded"),
    }
    assert day[never.isoformat()].state == "missing" and day[never.isoformat()].runs == []


def test_a_date_being_processed_is_running_then_retrying(fresh_bucket, tlc, settings_env):  # noqa: F811
    """Another instance holds the month's split: the date waits (running), then is retried (retrying)."""
    data_dir, _ = tlc
    serve_month(data_dir, 2019, 4, rows=2_000)
    settings_env(SPLIT_WAIT_SECONDS="6")
    fresh_bucket.blob(paths.staging_claim(SERVICE, 2019, 4)).upload_from_string(b"{}")
    day = dt.date(2019, 4, 2)
    outcome: dict[str, BaseException] = {}

    def deliver():
        try:
            ingest_function.handle(now_event(day))
        except BaseException as exc:  # noqa: BLE001 - examined below
            outcome["error"] = exc

    worker = threading.Thread(target=deliver)
    worker.start()
    try:
        deadline, state = time.monotonic() + 5, None
        while time.monotonic() < deadline and state != "running":
            state = days(fresh_bucket, day, day)[day.isoformat()].state
            time.sleep(0.3)
        assert state == "running", "a date whose ingest is under way is reported as running"
    finally:
        worker.join()
    assert isinstance(outcome.get("error"), TransientError)
    after = days(fresh_bucket, day, day)[day.isoformat()]
    assert after.label == "retrying (attempt 1, month_split_in_progress)"


def test_dates_a_backfill_published_are_queued_until_their_ingest_runs(fresh_bucket, tlc, settings_env, pubsub):
    """Published, not yet delivered: `queued`, never `missing`. The ingest topic is a temporary one
    here, so the messages wait there undelivered, as a backlog would."""
    from functions import backfill as backfill_function

    data_dir, _ = tlc
    serve_month(data_dir, 2019, 5, rows=1_000)
    topic = pubsub.temporary_topic()
    tap = pubsub.pull_subscription(topic)
    settings_env(INGEST_TOPIC=topic)
    first, last = dt.date(2019, 5, 1), dt.date(2019, 5, 3)
    backfill_function.handle(
        message_published_event(
            {"start": first.isoformat(), "end": last.isoformat()}, publish_time=dt.datetime.now(dt.UTC).isoformat()
        )
    )
    seen = days(fresh_bucket, first, last + dt.timedelta(days=1))
    assert [seen[d.isoformat()].label for d in status.date_range(first, last)] == ["queued (backfill)"] * 3
    assert seen[(last + dt.timedelta(days=1)).isoformat()].state == "missing"
    delivered = pubsub.drain(tap)
    assert len(delivered) == 3
    queued_ids = {r.event_id for d in status.date_range(first, last) for r in seen[d.isoformat()].runs}
    assert queued_ids == {m.message_id for m in delivered}, "each record is named after its ingest message"

    ingest_function.handle(now_event(first))  # the first message is delivered: no longer queued
    after = days(fresh_bucket, first, last)
    assert after[first.isoformat()].state == "partial"  # the loaders' turn
    assert after[last.isoformat()].state == "queued"
