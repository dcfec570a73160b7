"""Backfill: inclusive range expansion, strict validation, planning, batched publishing, both entry points."""

from __future__ import annotations

import base64
import datetime as dt
import json
from concurrent.futures import Future

import pytest
from cloudevents.http import CloudEvent
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from shared.core import clients
from shared.core.errors import TransientError, ValidationError
from shared.core.messages import expand, parse_backfill
from shared.core.settings import Settings, get_settings
from shared.operate import backfill
from shared.operate.status import (
    COMPLETE,
    DEAD_LETTERED,
    FAILED,
    MISMATCH,
    MISSING,
    PARTIAL,
    RETRYING,
    RUNNING,
    DayStatus,
    StatusReport,
)

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
ENV = {"GCP_PROJECT": "test-project", "LAKE_BUCKET": "lake", "DEAD_LETTER_TOPIC": "dead", "INGEST_TOPIC": "ingest"}
SETTINGS = Settings.from_env(ENV, "backfill")


def dates(start, end, **extra):
    return [
        (r.service, r.date.isoformat())
        for r in expand(parse_backfill({"start": start, "end": end, **extra}, 3660, NOW))
    ]


# --- range expansion -------------------------------------------------------------------------------


def test_range_is_inclusive_of_both_ends_as_in_the_tutorial():
    got = dates("2021-01-01", "2021-01-08")
    assert len(got) == 8
    assert got[0] == ("yellow", "2021-01-01") and got[-1] == ("yellow", "2021-01-08")


def test_single_day_range():
    assert dates("2021-01-15", "2021-01-15") == [("yellow", "2021-01-15")]


def test_month_boundary():
    assert [d for _, d in dates("2021-01-30", "2021-02-02")] == ["2021-01-30", "2021-01-31", "2021-02-01", "2021-02-02"]


def test_thirty_day_month_boundary():
    assert [d for _, d in dates("2021-04-29", "2021-05-01")] == ["2021-04-29", "2021-04-30", "2021-05-01"]


def test_year_boundary():
    assert [d for _, d in dates("2020-12-30", "2021-01-02")] == ["2020-12-30", "2020-12-31", "2021-01-01", "2021-01-02"]


@pytest.mark.parametrize(
    "start, end, expected",
    [
        ("2020-02-28", "2020-03-01", ["2020-02-28", "2020-02-29", "2020-03-01"]),  # leap year
        ("2021-02-28", "2021-03-01", ["2021-02-28", "2021-03-01"]),  # not a leap year
        ("2016-02-29", "2016-02-29", ["2016-02-29"]),
    ],
)
def test_leap_days(start, end, expected):
    assert [d for _, d in dates(start, end)] == expected


def test_whole_years_count_leap_days():
    assert len(dates("2020-01-01", "2020-12-31")) == 366
    assert len(dates("2021-01-01", "2021-12-31")) == 365


def test_several_services_date_order_then_service_order():
    got = dates("2021-01-01", "2021-01-02", services=["yellow", "green"])
    assert got == [("yellow", "2021-01-01"), ("green", "2021-01-01"), ("yellow", "2021-01-02"), ("green", "2021-01-02")]


def test_service_list_as_comma_string_and_duplicates_collapse():
    assert dates("2021-01-01", "2021-01-01", services="green, green,fhv") == [
        ("green", "2021-01-01"),
        ("fhv", "2021-01-01"),
    ]


# --- validation: every field -------------------------------------------------------------------------

VALID = {"start": "2021-01-01", "end": "2021-01-31"}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"start": "2021-02-01"}, "start"),  # start after end
        ({"start": "2021-02-30"}, "start"),
        ({"start": "2021-1-1"}, "start"),
        ({"start": 20210101}, "start"),
        ({"start": None}, "start"),
        ({"start": "2008-12-31"}, "start"),  # before yellow data
        ({"end": "2021-13-01"}, "end"),
        ({"end": "2026-11-26"}, "end"),  # the future, in New York
        ({"end": ""}, "end"),
        ({"service": "blue"}, "service"),
        ({"service": ["yellow"]}, "service"),
        ({"services": []}, "services"),
        ({"services": ["yellow", "purple"]}, "services"),
        ({"services": {"yellow": 1}}, "services"),
        ({"service": "yellow", "services": ["green"]}, "services"),
        ({"services": ["green"], "start": "2013-07-31"}, "start"),  # before green data
        ({"services": ["yellow", "green"], "start": "2013-07-31"}, "start"),
        ({"force": "yes"}, "force"),
        ({"force": 1}, "force"),
        ({"only_missing": "maybe"}, "only_missing"),
        ({"dry_run": None}, "dry_run"),
        ({"date": "2021-01-01"}, "date"),  # unknown key
        ({"Start": "2021-01-01"}, "Start"),
    ],
)
def test_invalid_fields_are_named(change, field):
    with pytest.raises(ValidationError) as err:
        parse_backfill({**VALID, **change}, 3660, NOW)
    assert err.value.field == field
    assert err.value.as_dict()["reason"] == "invalid_input"


@pytest.mark.parametrize("missing", ["start", "end"])
def test_missing_dates(missing):
    fields = dict(VALID)
    del fields[missing]
    with pytest.raises(ValidationError) as err:
        parse_backfill(fields, 3660, NOW)
    assert err.value.field == missing


@pytest.mark.parametrize("body", [[], "2021-01-01", None, 5])
def test_body_must_be_an_object(body):
    with pytest.raises(ValidationError):
        parse_backfill(body, 3660, NOW)


def test_maximum_is_counted_in_service_date_pairs_and_inclusive():
    assert len(expand(parse_backfill(VALID, 31, NOW))) == 31
    with pytest.raises(ValidationError) as err:
        parse_backfill(VALID, 30, NOW)
    assert err.value.field == "end"
    with pytest.raises(ValidationError):
        parse_backfill({**VALID, "services": ["yellow", "green"]}, 61, NOW)


def test_default_maximum_allows_ten_years_but_not_more():
    assert SETTINGS.backfill_max_dates == 3660
    parse_backfill({"start": "2011-01-01", "end": "2021-01-07"}, SETTINGS.backfill_max_dates, NOW)  # 3660 dates
    with pytest.raises(ValidationError):
        parse_backfill({"start": "2011-01-01", "end": "2021-01-08"}, SETTINGS.backfill_max_dates, NOW)


def test_options_parse():
    request = parse_backfill({**VALID, "force": True, "only_missing": "true", "dry_run": "false"}, 3660, NOW)
    assert (request.force, request.only_missing, request.dry_run) == (True, True, False)


# --- planning and publishing -------------------------------------------------------------------------


class FakePublisher:
    """Records publishes; futures resolve at once (or fail for the bodies listed in `fail`)."""

    def __init__(self, fail=()):
        self.published, self.fail = [], set(fail)

    def publish(self, topic, data, **attributes):
        self.published.append((topic, json.loads(data), attributes))
        future = Future()
        if data.decode() in self.fail:
            future.set_exception(RuntimeError("deadline exceeded"))
        else:
            future.set_result(str(len(self.published)))
        return future


def test_publishes_one_message_per_service_date_and_awaits_them():
    publisher = FakePublisher()
    plan, published = backfill.run(
        {"start": "2021-01-01", "end": "2021-01-07", "service": "yellow"}, SETTINGS, publisher=publisher, now=NOW
    )
    assert published == 7 == len(plan.messages)
    assert {topic for topic, _, _ in publisher.published} == {"projects/test-project/topics/ingest"}
    assert [body for _, body, _ in publisher.published][:2] == [
        {"date": "2021-01-01", "service": "yellow"},
        {"date": "2021-01-02", "service": "yellow"},
    ]
    assert plan.as_dict(published)["published"] == 7


def test_each_published_date_is_recorded_queued_and_a_failing_ledger_changes_nothing():
    recorded = []

    def record(bucket, function, published, queued_at):
        recorded.append((bucket, function, list(published), queued_at))
        return len(published)

    publisher = FakePublisher()
    plan, published = backfill.run(
        {"start": "2021-01-01", "end": "2021-01-03"}, SETTINGS, publisher=publisher, now=NOW, record_queued=record
    )
    ((bucket, function, sent, queued_at),) = recorded
    assert (bucket, function, published) == ("lake", "backfill", 3)
    assert sent == [("yellow", dt.date(2021, 1, d), str(d)) for d in (1, 2, 3)]  # the new message ids
    assert queued_at <= dt.datetime.now(dt.UTC)

    def broken(*args):
        raise ConnectionError("GCS unreachable")

    assert (
        backfill.run(
            {"start": "2021-01-01", "end": "2021-01-02"},
            SETTINGS,
            publisher=FakePublisher(),
            now=NOW,
            record_queued=broken,
        )[1]
        == 2
    )
    recorded.clear()  # a partly failed publish still records what did go out, then fails for a retry
    failing = FakePublisher(fail={'{"date":"2021-01-02","service":"yellow"}'})
    with pytest.raises(TransientError):
        backfill.run(
            {"start": "2021-01-01", "end": "2021-01-02"}, SETTINGS, publisher=failing, now=NOW, record_queued=record
        )
    assert [day for _, day, _ in recorded[0][2]] == [dt.date(2021, 1, 1)]


def test_force_is_carried_into_every_message():
    publisher = FakePublisher()
    backfill.run({"start": "2021-01-01", "end": "2021-01-02", "force": True}, SETTINGS, publisher=publisher, now=NOW)
    assert all(body == {"date": body["date"], "service": "yellow", "force": True} for _, body, _ in publisher.published)


def test_dry_run_publishes_nothing_and_returns_the_plan():
    publisher = FakePublisher()
    plan, published = backfill.run(
        {"start": "2021-01-01", "end": "2021-01-08", "dry_run": True}, SETTINGS, publisher=publisher, now=NOW
    )
    assert published == 0 and publisher.published == []
    body = plan.as_dict(published)
    assert body["planned"] == body["dates"] == 8 and len(body["messages"]) == 8 and body["dry_run"] is True


def test_invalid_request_publishes_nothing():
    publisher = FakePublisher()
    with pytest.raises(ValidationError):
        backfill.run({"start": "2021-01-08", "end": "2021-01-01"}, SETTINGS, publisher=publisher, now=NOW)
    assert publisher.published == []


def test_a_failed_publish_fails_the_backfill_for_a_retry():
    publisher = FakePublisher(fail=['{"date":"2021-01-02","service":"yellow"}'])
    with pytest.raises(TransientError) as err:
        backfill.run({"start": "2021-01-01", "end": "2021-01-03"}, SETTINGS, publisher=publisher, now=NOW)
    assert err.value.details["published"] == 2 and err.value.details["failed"] == 1
    assert len(publisher.published) == 3  # every future was awaited, none abandoned


def _report(service, start, end, states):
    days = []
    for i, state in enumerate(states):
        day = start + dt.timedelta(days=i)
        lake = None if state in (MISSING,) else 10
        days.append(
            DayStatus(service, day, state, lake, 0, 10 if state == COMPLETE else 0, 10 if state == COMPLETE else 0)
        )
    assert days[-1].date == end
    return StatusReport(service, start, end, days)


def test_only_missing_publishes_the_dates_not_complete_and_forces_those_in_the_lake():
    states = [COMPLETE, PARTIAL, COMPLETE, MISSING, FAILED, COMPLETE, COMPLETE]
    calls = []

    def reader(service, start, end, settings):
        calls.append((service, start, end))
        return _report(service, start, end, states)

    publisher = FakePublisher()
    plan, published = backfill.run(
        {"start": "2021-01-01", "end": "2021-01-07", "only_missing": True},
        SETTINGS,
        publisher=publisher,
        status_reader=reader,
        now=NOW,
    )
    assert calls == [("yellow", dt.date(2021, 1, 1), dt.date(2021, 1, 7))]
    assert published == 3 and plan.skipped_complete == 4
    assert [body for _, body, _ in publisher.published] == [
        {"date": "2021-01-02", "service": "yellow", "force": True},  # partial: ingest would skip it
        {"date": "2021-01-04", "service": "yellow"},  # missing: a plain ingest
        {"date": "2021-01-05", "service": "yellow", "force": True},  # failed
    ]
    assert plan.as_dict(published)["states"] == {
        "yellow": {"2021-01-02": PARTIAL, "2021-01-04": MISSING, "2021-01-05": FAILED}
    }


def test_only_missing_with_everything_complete_publishes_nothing():
    publisher = FakePublisher()
    plan, published = backfill.run(
        {"start": "2021-01-01", "end": "2021-01-02", "services": ["yellow", "green"], "only_missing": True},
        SETTINGS,
        publisher=publisher,
        status_reader=lambda s, a, b, _: _report(s, a, b, [COMPLETE, COMPLETE]),
        now=NOW,
    )
    assert (published, plan.skipped_complete, publisher.published) == (0, 4, [])


def test_only_missing_dry_run_reads_status_but_publishes_nothing():
    publisher = FakePublisher()
    plan, published = backfill.run(
        {"start": "2021-01-01", "end": "2021-01-02", "only_missing": True, "dry_run": True},
        SETTINGS,
        publisher=publisher,
        status_reader=lambda s, a, b, _: _report(s, a, b, [MISSING, COMPLETE]),
        now=NOW,
    )
    assert published == 0 and publisher.published == []
    assert [m.as_message() for m in plan.messages] == [{"date": "2021-01-01", "service": "yellow"}]


def test_repair_republishes_only_lake_dates_a_destination_lacks_and_nothing_in_flight_or_never_ingested():
    """The scheduled self-healing: a loader outage longer than its retries, or a lost finalize."""
    states = [COMPLETE, PARTIAL, MISMATCH, DEAD_LETTERED, RUNNING, RETRYING, FAILED, MISSING]
    seen = []

    def reader(service, start, end, settings):
        seen.append((start, end))
        return _report(service, start, end, states)

    publisher = FakePublisher()
    plan, published = backfill.run(
        {"last_days": 8, "repair": True}, SETTINGS, publisher=publisher, status_reader=reader, now=NOW
    )
    assert seen == [(dt.date(2026, 11, 17), dt.date(2026, 11, 24))]  # the 8 days before today in New York
    assert [body for _, body, _ in publisher.published] == [
        {"date": f"2026-11-{d}", "service": "yellow", "force": True} for d in (18, 19, 20)
    ]
    assert published == 3 and plan.skipped_complete == 1
    assert plan.as_dict(published)["repair"] is True


def test_dead_lettered_without_a_lake_partition_is_not_repaired():
    """Ingest gave up (say the month is not published yet): repair must not fetch it every hour."""

    def reader(service, start, end, settings):
        report = _report(service, start, end, [DEAD_LETTERED])
        report.days[0].lake_rows = None
        return report

    publisher = FakePublisher()
    _, published = backfill.run(
        {"start": "2021-01-01", "end": "2021-01-01", "repair": True},
        SETTINGS,
        publisher=publisher,
        status_reader=reader,
        now=NOW,
    )
    assert published == 0 and publisher.published == []


@pytest.mark.parametrize(
    "body, field",
    [
        ({"last_days": 0}, "last_days"),
        ({"last_days": 367}, "last_days"),
        ({"last_days": "7"}, "last_days"),
        ({"last_days": True}, "last_days"),
        ({"last_days": 7, "start": "2021-01-01"}, "start"),
        ({"last_days": 7, "repair": True, "only_missing": True}, "repair"),
    ],
)
def test_last_days_and_repair_are_validated(body, field):
    with pytest.raises(ValidationError) as err:
        backfill.run(body, SETTINGS, publisher=FakePublisher(), status_reader=lambda *a: None, now=NOW)
    assert err.value.field == field


# --- entry points -------------------------------------------------------------------------------------


@pytest.fixture
def environment(monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    publisher = FakePublisher()
    clients.reset()
    monkeypatch.setattr(clients, "publisher", lambda: publisher)
    yield publisher
    get_settings.cache_clear()


def pubsub_event(body):
    data = base64.b64encode(json.dumps(body).encode()).decode()
    return CloudEvent(
        {
            "type": "google.cloud.pubsub.topic.v1.messagePublished",
            "source": "test",
            "id": "42",
            "time": dt.datetime.now(dt.UTC).isoformat(),
        },
        {"message": {"data": data, "messageId": "42", "publishTime": dt.datetime.now(dt.UTC).isoformat()}},
    )


def test_cloud_event_entry_point_publishes(environment, capsys):
    from functions.backfill import handle

    handle(pubsub_event({"start": "2021-01-01", "end": "2021-01-31", "service": "yellow"}))
    assert len(environment.published) == 31
    outcome = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert outcome["published"] == 31 and outcome["severity"] == "INFO"


def test_cloud_event_entry_point_dead_letters_an_invalid_request(environment, capsys):
    from functions.backfill import handle

    handle(pubsub_event({"start": "2021-01-31", "end": "2021-01-01"}))  # returns: acked, not retried
    assert len(environment.published) == 1
    topic, body, attributes = environment.published[0]
    assert topic == "projects/test-project/topics/dead"
    assert body["function"] == "backfill" and body["error"]["field"] == "start"
    assert attributes["reason"] == "invalid_input"


def http_request(method="POST", body=None, query=None):
    builder = EnvironBuilder(
        method=method,
        data=json.dumps(body) if body is not None else None,
        query_string=query,
        content_type="application/json",
    )
    return Request(builder.get_environ())


def test_http_entry_point_returns_the_plan(environment):
    from functions.backfill import handle_http

    body, status = handle_http(http_request(body={"start": "2021-01-01", "end": "2021-01-08", "dry_run": True}))
    assert status == 200 and body["planned"] == 8 and body["published"] == 0
    assert body["messages"][-1] == {"date": "2021-01-08", "service": "yellow"}
    assert environment.published == []


def test_http_entry_point_accepts_query_parameters_and_publishes(environment):
    from functions.backfill import handle_http

    body, status = handle_http(
        http_request("GET", query={"start": "2021-01-01", "end": "2021-01-02", "services": "yellow,green"})
    )
    assert status == 200 and body["published"] == 4 and len(environment.published) == 4


@pytest.mark.parametrize(
    "request_kwargs, field",
    [
        ({"body": {"start": "2021-01-01", "end": "2021-01-02", "colour": "red"}}, "colour"),
        ({"body": ["2021-01-01"]}, "body"),
        ({"body": {"start": "2021-01-01", "end": "2021-01-02"}, "query": {"force": "true"}}, "body"),
    ],
)
def test_http_entry_point_structured_errors(environment, request_kwargs, field):
    from functions.backfill import handle_http

    body, status = handle_http(http_request(**request_kwargs))
    assert status == 400 and body["field"] == field and body["reason"] == "invalid_input"
    assert environment.published == []


def test_http_entry_point_not_json(environment):
    from functions.backfill import handle_http

    request = Request(EnvironBuilder(method="POST", data="{nope", content_type="application/json").get_environ())
    body, status = handle_http(request)
    assert status == 400 and body["field"] == "body"
