"""The run ledger: records written at the function boundary, their bounds, and the states status derives.

Plain data and an in-memory bucket: no server. The integration tests (tests/integration/
test_run_ledger.py) drive the same code against fake-gcs-server and the real functions.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from types import SimpleNamespace

import pytest
from cloudevents.http import CloudEvent
from google.api_core.exceptions import NotFound

from shared.core import clients, ledger, ledger_read, ledger_record, paths
from shared.core.errors import PermanentError, SourceError, TransientError
from shared.core.ledger_read import RunRecord
from shared.core.ledger_record import DEAD_LETTERED, QUEUED, RETRYING, RUNNING, SKIPPED, SUCCEEDED
from shared.core.runtime import event_function
from shared.core.settings import get_settings
from shared.operate.status import COMPLETE, MISMATCH, MISSING, PARTIAL, LakeDay, build_report
from shared.operate.status_page import hover_text, render_html, render_text

DAY = dt.date(2021, 1, 15)
NOW = dt.datetime(2026, 1, 2, 12, 0, tzinfo=dt.UTC)
NAME = "runs/yellow/pickup_date=2021-01-15/ingest/42.json"


# --- names ---------------------------------------------------------------------------------------------


def test_record_names_are_bounded_and_parse_back():
    assert paths.run_record("yellow", DAY, "ingest", "42") == NAME
    assert paths.parse_run_record(NAME) == paths.RunName("yellow", DAY, "ingest", "42")
    hostile = paths.run_record("yellow", DAY, "ingest", "../../trips/x" + "y" * 500)
    assert hostile.count("/") == NAME.count("/") and len(hostile) < 200
    assert paths.run_record("yellow", DAY, "ingest", None).endswith("/ingest/no-id.json")
    assert paths.parse_run_record("trips/yellow/pickup_date=2021-01-15/data.parquet") is None
    assert paths.parse_run_record("runs/blue/pickup_date=2021-01-15/ingest/1.json") is None


def test_range_listing_is_bounded_by_offsets():
    prefix, start, end = paths.runs_range("yellow", dt.date(2021, 1, 30), dt.date(2021, 2, 2))
    assert prefix == "runs/yellow/pickup_date="
    assert start == "runs/yellow/pickup_date=2021-01-30/" and end == "runs/yellow/pickup_date=2021-02-03/"
    assert start <= "runs/yellow/pickup_date=2021-02-02/load_postgres/9.json" < end
    assert not "runs/yellow/pickup_date=2021-01-29/ingest/9.json" >= start


# --- the boundary writes --------------------------------------------------------------------------------


class FakeBlob:
    def __init__(self, bucket, name):
        self.bucket, self.name, self.metadata = bucket, name, None

    def upload_from_string(self, data, content_type=None, timeout=None):
        if self.bucket.fail_writes:
            raise ConnectionError("GCS unreachable")
        self.bucket.objects[self.name] = (data.encode() if isinstance(data, str) else data, dict(self.metadata or {}))
        self.bucket.writes += 1

    def download_as_bytes(self, timeout=None):
        if self.name not in self.bucket.objects:
            raise NotFound(self.name)
        return self.bucket.objects[self.name][0]


class FakeBucket:
    def __init__(self):
        self.objects, self.writes, self.fail_writes, self.listed = {}, 0, False, []

    def blob(self, name):
        return FakeBlob(self, name)

    def record(self, name=NAME):
        return json.loads(self.objects[name][0])

    def list_blobs(self, prefix, start_offset, end_offset):
        self.listed.append((prefix, start_offset, end_offset))
        return [
            SimpleNamespace(name=n, metadata=m)
            for n, (_, m) in sorted(self.objects.items())
            if n.startswith(prefix) and start_offset <= n < end_offset
        ]


class FakePublisher:
    def __init__(self):
        self.published = []

    def publish(self, topic, data, **attributes):
        self.published.append((topic, json.loads(data), attributes))
        return SimpleNamespace(result=lambda timeout: "dl-1")


@pytest.fixture
def lake(monkeypatch):
    for key, value in {
        "GCP_PROJECT": "p",
        "LAKE_BUCKET": "lake",
        "DEAD_LETTER_TOPIC": "dead",
        "MAX_EVENT_AGE_SECONDS": "3600",
    }.items():
        monkeypatch.setenv(key, value)
    bucket, publisher = FakeBucket(), FakePublisher()
    clients.reset()
    monkeypatch.setattr(clients, "storage", lambda: SimpleNamespace(bucket=lambda name: bucket))
    monkeypatch.setattr(clients, "publisher", lambda: publisher)
    bucket.publisher = publisher
    yield bucket
    get_settings.cache_clear()


def event(data_extra=None, age=dt.timedelta(0)):
    published = (dt.datetime.now(dt.UTC) - age).isoformat()
    data = {
        "message": {"data": base64.b64encode(b"{}").decode(), "messageId": "42", "publishTime": published},
        **(data_extra or {}),
    }
    return CloudEvent({"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "t", "id": "42"}, data)


def entry(behaviour):
    """An ingest-like entry point: names its date, then does `behaviour`."""

    @event_function("ingest")
    def handle(cloud_event, settings):
        ledger.started("yellow", DAY)
        assert settings.lake_bucket == "lake"
        return behaviour()

    return handle


def test_success_writes_running_then_succeeded_two_writes(lake):
    seen = {}

    def work():
        seen["during"] = lake.record()["outcome"]
        return {"rows_written": 96}

    entry(work)(event())
    assert seen["during"] == RUNNING
    record = lake.record()
    assert (record["outcome"], record["attempt"], record["rows"], record["message_id"]) == (SUCCEEDED, 1, 96, "42")
    assert record["finished_at"] and record["history"] == [] and lake.writes == 2
    assert lake.objects[NAME][1]["outcome"] == SUCCEEDED  # listed without a download


def test_retries_count_attempts_and_keep_a_short_history(lake):
    def fail():
        raise TransientError("HTTP 500 from the source", reason="download_failed")

    handle = entry(fail)
    for attempt in range(1, 9):
        with pytest.raises(TransientError):
            handle(event())
        record = lake.record()
        assert (record["outcome"], record["attempt"], record["reason"]) == (RETRYING, attempt, "download_failed")
    assert len(record["history"]) == ledger_record.MAX_HISTORY and record["history"][-1]["attempt"] == 7
    entry(lambda: {"skipped": True, "rows_written": 5})(event())
    assert (lake.record()["outcome"], lake.record()["attempt"], lake.record()["reason"]) == (SKIPPED, 9, "up_to_date")


def test_delivery_attempt_of_the_platform_wins_when_present(lake):
    entry(lambda: {})(event({"deliveryAttempt": 4}))
    assert lake.record()["attempt"] == 4


def test_permanent_failure_is_dead_lettered_with_its_reason(lake):
    def fail():
        raise SourceError("404 for https://x/yellow_2021-01.csv.gz", reason="source_not_found")

    entry(fail)(event())  # acked
    record = lake.record()
    assert (record["outcome"], record["reason"]) == (DEAD_LETTERED, "source_not_found")
    assert "404" in record["error"] and len(lake.publisher.published) == 1


def test_transient_failure_of_an_old_event_is_dead_lettered(lake):
    def fail():
        raise TransientError("timeout", reason="network")

    entry(fail)(event(age=dt.timedelta(hours=2)))
    assert (lake.record()["outcome"], lake.record()["reason"]) == (DEAD_LETTERED, "max_event_age_exceeded")


def test_a_failing_ledger_never_changes_the_outcome(lake, capsys):
    lake.fail_writes = True
    entry(lambda: {"rows_written": 1})(event())  # returns: the work succeeded
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    warnings = [line for line in lines if line["severity"] == "WARNING"]
    assert len(warnings) == 2 and all("run ledger" in w["message"] for w in warnings)
    assert lines[-1]["severity"] == "INFO"
    with pytest.raises(TransientError):  # and a retry stays a retry
        entry(lambda: (_ for _ in ()).throw(TransientError("x")))(event())


class Payload:
    """Stands for a delivery's large locals (a date's partition bytes); weak-referenceable."""


@pytest.mark.parametrize("raises", [False, True])
def test_the_garbage_of_a_delivery_is_freed_when_it_ends(lake, raises):
    """A caught exception's traceback holds the frame that caught it, and that frame its locals:
    a cycle only a collection frees. The boundary collects after every delivery (shared/core/heap.py),
    so nothing of a delivery outlives it. Automatic collection is off here, so only the boundary's runs."""
    import gc
    import sys
    import weakref

    seen = {}

    def work():
        payload = Payload()
        seen["payload"] = weakref.ref(payload)
        try:
            raise NotFound("absent")  # as get_blob says "absent": raised and caught
        except NotFound as exc:
            caught = exc  # kept in a local, as the client's retry helper does: a cycle through this frame
        assert caught.__traceback__.tb_frame is sys._getframe()
        if raises:
            raise TransientError("retry me")
        return {"rows_written": 1}

    enabled = gc.isenabled()
    gc.disable()
    try:
        if raises:  # what a failed delivery leaves is freed by the end of the next one
            with pytest.raises(TransientError):
                entry(work)(event())
            entry(lambda: {"rows_written": 1})(event())
        else:
            entry(work)(event())
        assert seen["payload"]() is None
    finally:
        if enabled:
            gc.enable()


def test_a_failure_before_started_is_recorded_under_the_context_date(lake):
    @event_function("ingest")
    def handle(cloud_event, settings):
        raise PermanentError("bad", reason="quality_check_failed", context={"service": "yellow", "date": "2021-01-15"})

    handle(event())
    assert lake.record()["outcome"] == DEAD_LETTERED


def test_no_date_no_record(lake):
    @event_function("ingest")
    def handle(cloud_event, settings):
        raise PermanentError("bad message", reason="invalid_input")

    handle(event())
    assert lake.objects == {}


def test_bodies_are_bounded_whatever_the_error_says(lake):
    run = ledger_record.Run("ingest", "4" * 5000, "2" * 5000, None, service="yellow", date=DAY)
    run.history = [
        {"attempt": i, "outcome": RETRYING, "reason": "r" * 90, "started_at": "x" * 40, "finished_at": "y" * 40}
        for i in range(ledger_record.MAX_HISTORY)
    ]
    body = ledger_record.record_body(run, DEAD_LETTERED, "r" * 1000, "e" * 100_000, 5)
    assert len(json.dumps(body)) <= ledger_record.MAX_BODY_BYTES and len(body["error"]) == ledger_record.MAX_ERROR_CHARS
    meta = ledger_record.record_metadata(body)
    assert sum(len(k) + len(v) for k, v in meta.items()) < 1024


def test_reading_lists_once_with_offsets(lake):
    entry(lambda: {"rows_written": 3})(event())
    lake.objects["runs/yellow/pickup_date=2021-01-16/ingest/7.json"] = (b"{}", {"outcome": RUNNING, "attempt": "1"})
    runs = ledger_read.read_runs(lake, "yellow", DAY, DAY)
    assert lake.listed == [paths.runs_range("yellow", DAY, DAY)]
    assert list(runs) == [DAY] and runs[DAY][0].outcome == SUCCEEDED and runs[DAY][0].rows == 3


# --- states from plain data ------------------------------------------------------------------------------


def rec(function, outcome, minutes_ago=1, attempt=1, reason=None, event_id="1"):
    return RunRecord(function, event_id, outcome, attempt, reason, None, None, NOW - dt.timedelta(minutes=minutes_ago))


@pytest.mark.parametrize(
    "records, expected",
    [
        ([], None),
        ([rec("ingest", SUCCEEDED)], None),
        ([rec("ingest", RUNNING)], RUNNING),
        ([rec("ingest", RUNNING, minutes_ago=30)], RETRYING),  # the attempt died without an outcome
        ([rec("ingest", RETRYING, attempt=3, reason="download_failed")], RETRYING),
        ([rec("ingest", DEAD_LETTERED, reason="source_not_found")], DEAD_LETTERED),
        # a later event of the same function supersedes an earlier one's fate
        ([rec("ingest", DEAD_LETTERED, 10), rec("ingest", SUCCEEDED, 5, event_id="2")], None),
        ([rec("ingest", SUCCEEDED, 10, event_id="2"), rec("ingest", RETRYING, 5)], RETRYING),
        # one loader gave up while the other succeeded later: the failure is still told
        (
            [rec("ingest", SUCCEEDED, 9), rec("load_postgres", DEAD_LETTERED, 8), rec("load_bigquery", SUCCEEDED, 1)],
            DEAD_LETTERED,
        ),
        # work under way wins over a past failure
        ([rec("load_postgres", DEAD_LETTERED, 1), rec("load_bigquery", RETRYING, 5)], RETRYING),
        ([rec("load_postgres", RETRYING, 1), rec("ingest", RUNNING, 5)], RUNNING),
        # a backfill's queued record until the ingest it queued leaves a record at or after it
        ([rec("backfill", QUEUED, 5)], QUEUED),
        ([rec("backfill", QUEUED, 5), rec("ingest", RUNNING, 4)], RUNNING),
        ([rec("backfill", QUEUED, 5), rec("ingest", SUCCEEDED, 4)], None),
        ([rec("backfill", QUEUED, 5), rec("ingest", DEAD_LETTERED, 4)], DEAD_LETTERED),
        # queued again after an earlier failure: the new request is under way
        ([rec("ingest", DEAD_LETTERED, 10), rec("backfill", QUEUED, 5)], QUEUED),
        ([rec("backfill", QUEUED, 5), rec("load_postgres", RETRYING, 1)], RETRYING),
    ],
)
def test_in_flight(records, expected):
    found = ledger_read.in_flight(records, NOW)
    assert (found.outcome if found else None) == expected


def report_with(runs, lake=None, bigquery=None, postgres=None):
    return build_report("yellow", DAY, DAY, lake or {}, bigquery or {}, postgres or {}, {}, runs={DAY: runs}, now=NOW)


def test_status_never_calls_a_date_in_flight_missing():
    day = report_with([rec("ingest", RETRYING, attempt=2, reason="download_failed")]).days[0]
    assert (day.state, day.label) == (RETRYING, "retrying (attempt 2, download_failed)")
    assert day.notes[0].startswith("ingest retrying, attempt 2 (download_failed)")
    assert report_with([rec("ingest", RUNNING)]).days[0].state == RUNNING
    day = report_with([rec("ingest", DEAD_LETTERED, reason="source_not_found")]).days[0]
    assert day.label == "dead_lettered (source_not_found)"
    assert build_report("yellow", DAY, DAY, {}, {}, {}, {}, now=NOW).days[0].state == MISSING  # never asked for


def test_the_counts_still_decide_complete_and_mismatch():
    held = {DAY: LakeDay(10, 0, 1)}
    assert report_with([rec("ingest", RUNNING)], held, {DAY: 10}, {DAY: 10}).days[0].state == COMPLETE
    assert report_with([rec("ingest", RETRYING)], held, {DAY: 10}, {DAY: 9}).days[0].state == MISMATCH
    partial = report_with([rec("ingest", SUCCEEDED, 3), rec("load_postgres", RUNNING)], held, {DAY: 10})
    assert partial.days[0].state == RUNNING
    assert report_with([rec("ingest", SUCCEEDED)], held, {DAY: 10}).days[0].state == PARTIAL


def test_every_format_shows_the_ledger_states():
    report = report_with([rec("ingest", RETRYING, attempt=2, reason="download_failed")])
    body = report.as_dict()
    assert body["dates"][0]["state"] == RETRYING and body["dates"][0]["run"]["attempt"] == 2
    assert body["dates"][0]["runs"][0]["function"] == "ingest" and body["summary"][RETRYING] == 1
    json.dumps(body)
    assert "retrying (attempt 2, download_failed)" in render_text(report).splitlines()[2]
    page = render_html(report)
    assert 'data-state="retrying"' in page and ".state-retrying{" in page
    assert "ingest retrying, attempt 2 (download_failed) at" in hover_text(report.days[0])


# --- queued: the backfill's one write per published date -------------------------------------------------


def test_queued_writes_one_record_per_published_date_named_after_the_message(lake):
    queued_at = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)
    other = DAY + dt.timedelta(days=1)
    written = ledger.queued("lake", "backfill", [("yellow", DAY, "m1"), ("green", other, "m2")], queued_at)
    assert written == 2 and lake.writes == 2
    body = lake.record(paths.run_record("yellow", DAY, "backfill", "m1"))
    assert (body["outcome"], body["function"], body["message_id"], body["finished_at"]) == (
        QUEUED,
        "backfill",
        "m1",
        None,
    )
    assert body["updated_at"] == body["started_at"] == queued_at.isoformat()  # older than any ingest record
    runs = ledger_read.read_runs(lake, "green", other, other)
    assert [(r.function, r.outcome, r.event_id) for r in runs[other]] == [("backfill", QUEUED, "m2")]
    day = report_with(runs[other]).days[0]
    assert (day.state, day.label) == (QUEUED, "queued (backfill)")


def test_queued_never_raises(lake, capsys):
    lake.fail_writes = True
    assert ledger.queued("lake", "backfill", [("yellow", DAY, "m1")], NOW) == 0
    assert "run ledger" in capsys.readouterr().out
    assert ledger.queued(None, "backfill", [("yellow", DAY, "m1")], NOW) == 0
