"""Pure rules of issue 18 parts 5 and 6: when a 404 means "not published yet", how status shows
such a date, when a recorded month failure still holds, and which dead letters clear it."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from shared.core.ledger_read import RunRecord
from shared.ingest import month_failure, publication
from shared.operate import heal
from shared.operate.replay_plan import plan
from shared.operate.status import AWAITING_SOURCE, MISSING, QUEUED, build_report

T0 = dt.datetime(2026, 12, 6, 6, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "year, month, today, awaiting",
    [
        (2026, 10, dt.date(2026, 12, 6), True),  # ended 36 days ago: TLC has not published it yet
        (2026, 12, dt.date(2026, 12, 6), True),  # the current month
        (2026, 9, dt.date(2026, 12, 30), True),  # ended 2026-09-30: due on 2026-12-31
        (2026, 9, dt.date(2026, 12, 31), False),  # 92 days after its end: a 404 is an error now
        (2017, 6, dt.date(2026, 12, 6), False),  # long published: a 404 is source_not_found
    ],
)
def test_a_404_is_awaiting_until_grace_days_after_the_months_end(year, month, today, awaiting):
    assert publication.awaiting(year, month, today, 92) is awaiting


def test_month_end_and_due_date_cross_the_year():
    assert publication.month_end(2024, 2) == dt.date(2024, 2, 29)
    assert publication.month_end(2026, 12) == dt.date(2026, 12, 31)
    assert publication.due_by(2026, 12, 92) == dt.date(2027, 4, 2)


def run(function, outcome, minutes, reason=None):
    return RunRecord(
        function, f"{function}-{minutes}", outcome, 1, reason, updated_at=T0 + dt.timedelta(minutes=minutes)
    )


def report(records):
    day = dt.date(2026, 11, 3)
    return build_report("green", day, day, {}, {}, {}, {}, runs={day: records}, now=T0 + dt.timedelta(hours=1)).days[0]


def test_status_shows_awaiting_source_as_a_wait_not_a_dead_letter():
    day = report([run("ingest", AWAITING_SOURCE, 0, "source_not_published")])
    assert day.state == AWAITING_SOURCE and day.label == AWAITING_SOURCE
    assert day.explanation["action"] == heal.WAIT and day.explanation["commands"] is None
    assert "catch-up" in day.explanation["remedy"]


def test_a_newer_queued_message_wins_and_a_later_success_is_complete_by_the_counts():
    assert report([run("ingest", AWAITING_SOURCE, 0), run("backfill", QUEUED, 5)]).state == QUEUED
    assert report([run("ingest", AWAITING_SOURCE, 0), run("backfill", QUEUED, -5)]).state == AWAITING_SOURCE
    assert report([]).state == MISSING


def test_the_scheduled_repair_leaves_an_awaiting_date_alone():
    assert heal.verdict(AWAITING_SOURCE, None, run("ingest", AWAITING_SOURCE, 0), []).action == heal.WAIT


@pytest.mark.parametrize(
    "recorded, now, changed",
    [
        ({"source_etag": "a", "source_size": "10"}, {"source_etag": "a", "source_size": "10"}, False),
        ({"source_etag": "a", "source_size": "10"}, {"source_etag": "b", "source_size": "10"}, True),
        ({"source_last_modified": "x", "source_size": "10"}, {"source_last_modified": "x", "source_size": "11"}, True),
        ({"source_size": "10"}, None, False),  # HEAD refused or failed: cannot tell, the record holds
        ({"source_size": "10"}, {}, True),  # the file is gone now (404)
        ({"source_etag": "a"}, {"source_size": "10"}, False),  # nothing comparable: the record holds
    ],
)
def test_a_recorded_failure_holds_until_the_source_serves_another_file(recorded, now, changed):
    assert month_failure.changed(recorded, now) is changed


def letter(function, error):
    original = base64.b64encode(b'{"date":"2016-03-09","service":"green"}').decode()
    event = {"attributes": {}, "data": {"message": {"data": original, "attributes": {}, "messageId": "1"}}}
    body = {"function": function, "reason": "bad_value", "error": error, "context": {}, "event": event}
    return json.dumps(body).encode(), {"function": function, "reason": "bad_value"}


def test_an_ingest_dead_letter_naming_its_month_failure_clears_it_when_replayed():
    uri = "gs://lake/staging/green/month=2016-03/_failed.json"
    topics = {"ingest": "projects/p/topics/taxi-ingest"}
    named = plan(*letter("ingest", {"reason": "bad_value", "month_failure": uri}), topics, lambda p: p)
    assert named.clears == uri and named.date == "2016-03-09" and named.problem is None
    assert plan(*letter("ingest", {"reason": "bad_value"}), topics, lambda p: p).clears is None
    for hostile in ("/etc/passwd", "gs://lake/trips/green/pickup_date=2016-03-09/data.parquet"):
        got = plan(*letter("ingest", {"month_failure": hostile}), topics, lambda p: p)
        assert got.clears is None, "only a month's failure record is ever deleted"
