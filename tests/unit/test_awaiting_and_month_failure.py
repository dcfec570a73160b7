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


# --- the daily catch-up (a `catch_up` backfill) and its freshness judgement ------------------------------

ENV = {
    "GCP_PROJECT": "p",
    "LAKE_BUCKET": "lake",
    "DEAD_LETTER_TOPIC": "dead",
    "INGEST_TOPIC": "ingest",
    "SOURCE_URL_TEMPLATE": "https://tlc.example/{service}_tripdata_{year}-{month:02d}.parquet",  # holdings unknown
}


class Publisher:
    def __init__(self):
        self.bodies = []

    def publish(self, topic, data):
        from concurrent.futures import Future

        self.bodies.append(json.loads(data))
        done = Future()
        done.set_result(str(len(self.bodies)))
        return done


def day_status(service, day, state, lake=None, run_record=None):
    from shared.operate.status import DayStatus

    return DayStatus(
        service,
        day,
        state,
        lake,
        0,
        lake or 0 if state == "complete" else 0,
        lake or 0 if state == "complete" else 0,
        runs=[run_record] if run_record else [],
        run=run_record,
    )


CATCH_UP_DAYS = [  # (state, lake rows, deciding record)
    ("complete", 10, None),
    (AWAITING_SOURCE, None, run("ingest", AWAITING_SOURCE, 0, "source_not_published")),
    (MISSING, None, None),
    ("dead_lettered", None, run("ingest", "dead_lettered", 0, "source_not_found")),
    ("running", None, run("ingest", "running", 50)),
    ("partial", 10, None),
    ("dead_lettered", 10, run("load_postgres", "dead_lettered", 0, "retries_exhausted")),
]


def test_the_catch_up_asks_again_for_what_is_not_loaded_but_leaves_in_flight_and_person_dates(capsys):
    from shared.core.settings import Settings
    from shared.operate import backfill
    from shared.operate.status import StatusReport

    now = dt.datetime(2026, 12, 8, 12, 0, tzinfo=dt.UTC)  # last_days 7: 2026-12-01..2026-12-07

    def reader(service, start, end, settings):
        days = [day_status(service, start + dt.timedelta(days=i), *spec) for i, spec in enumerate(CATCH_UP_DAYS)]
        return StatusReport(service, start, end, days)

    publisher = Publisher()
    plan, published = backfill.run(
        {"services": ["green"], "last_days": 7, "catch_up": True},
        Settings.from_env(ENV, "backfill"),
        publisher=publisher,
        status_reader=reader,
        now=now,
    )
    assert publisher.bodies == [
        {"date": "2026-12-02", "service": "green"},  # awaiting its source: asked again every day
        {"date": "2026-12-03", "service": "green"},  # never asked for
        {"date": "2026-12-06", "service": "green", "force": True},  # partial: the repair's rule
        {"date": "2026-12-07", "service": "green", "force": True},  # a loader gave up for want of retries
    ]
    assert published == 4 and plan.skipped_complete == 1
    assert list(plan.left_to_person["green"]) == ["2026-12-04"], "a permanent dead letter waits for a replay"
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if "source freshness" in x]
    assert (line["severity"], line["verdict"], line["service"], line["function"]) == (
        "WARNING",
        "behind",
        "green",
        "backfill",
    )
    assert line["dates_behind"] == 3 and line["dates_awaiting_source"] == 1
    assert line["behind"] == ["2026-12-04 dead_lettered", "2026-12-06 partial", "2026-12-07 dead_lettered"]
    assert line["newest_date_loaded"] == "2026-12-01" and line["newest_month_at_source"] == "2026-12"


def test_freshness_is_up_to_date_while_the_source_has_not_published_whatever_the_calendar():
    from shared.operate import freshness

    start = dt.date(2026, 8, 1)
    days = [day_status("yellow", start + dt.timedelta(days=i), "complete", 10) for i in range(30)]
    days += [day_status("yellow", start + dt.timedelta(days=30 + i), AWAITING_SOURCE) for i in range(90)]
    days += [day_status("yellow", start + dt.timedelta(days=120), MISSING)]
    got = freshness.judge("yellow", days)
    assert (got["verdict"], got["severity"], got["dates_behind"], got["dates_awaiting_source"]) == (
        "up_to_date",
        "INFO",
        0,
        90,
    )
    assert got["message"] == "source freshness: up to date with the source"
    assert got["newest_date_loaded"] == "2026-08-30" and got["newest_month_at_source"] == "2026-08"


@pytest.mark.parametrize(
    "body",
    [
        {"services": ["green"], "start": "2026-10-01", "end": "2026-10-02", "catch_up": True},  # needs last_days
        {"services": ["green"], "last_days": 7, "catch_up": True, "force": True},
        {"services": ["green"], "last_days": 7, "catch_up": "sometimes"},
    ],
)
def test_catch_up_is_validated(body):
    from shared.core.errors import ValidationError
    from shared.core.messages import parse_backfill

    with pytest.raises(ValidationError) as err:
        parse_backfill(body, 3660)
    assert err.value.field == "catch_up"


def test_the_scheduler_jobs_message_is_a_valid_catch_up():
    """infra/terraform/scheduler.tf's daily_catch_up body, with its defaults (tests/infra checks the HCL)."""
    from shared.core.messages import parse_backfill

    request = parse_backfill({"services": ["yellow", "green", "fhv"], "last_days": 124, "catch_up": True}, 3660)
    assert request.catch_up and request.only_missing and (request.end - request.start).days + 1 == 124


def test_with_the_mirror_the_catch_up_skips_months_it_can_never_serve_without_an_error(capsys):
    """DataTalksClub's mirror (SOURCE_URL_TEMPLATE set to it) stops at 2021-07: the catch-up's
    window is refused by no one and publishes nothing there (issue 18: unsupported_month is for a
    message that names such a month), and its freshness line says how many dates it cannot serve."""
    from shared.core.eras import MIRROR_TEMPLATE
    from shared.core.settings import Settings
    from shared.operate import backfill
    from shared.operate.status import StatusReport

    now = dt.datetime(2026, 12, 8, 12, 0, tzinfo=dt.UTC)
    env = {**ENV, "SOURCE_URL_TEMPLATE": MIRROR_TEMPLATE}

    def reader(service, start, end, settings):
        days = [day_status(service, start + dt.timedelta(days=i), MISSING) for i in range((end - start).days + 1)]
        return StatusReport(service, start, end, days)

    publisher = Publisher()
    plan, published = backfill.run(
        {"services": ["green"], "last_days": 7, "catch_up": True},
        Settings.from_env(env, "backfill"),
        publisher=publisher,
        status_reader=reader,
        now=now,
    )
    assert (published, publisher.bodies) == (0, [])
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if "source freshness" in x]
    assert (line["verdict"], line["dates_source_cannot_serve"], line["dates_behind"]) == ("up_to_date", 7, 0)
