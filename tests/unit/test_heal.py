"""Healing without a person, from plain data (issue 21, parts 1 and 3): which dates the scheduled
repair republishes and how often, what status tells a person, when the next repair comes, and
`queued` records whose message can no longer arrive."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.core import ledger_read, ledger_record
from shared.core.errors import ValidationError
from shared.core.ledger_read import RunRecord
from shared.core.messages import parse_backfill
from shared.core.schedule import parse_schedule
from shared.core.settings import Settings
from shared.operate import heal, repair, repair_schedule
from shared.operate.status import LakeDay, build_report

NOW = dt.datetime(2026, 12, 6, 10, 20, tzinfo=dt.UTC)
DAY = dt.date(2021, 8, 10)
SETTINGS = Settings.from_env({"GCP_PROJECT": "p", "DEAD_LETTER_TOPIC": "d", "INGEST_TOPIC": "i", "LAKE_BUCKET": "b"})


def rec(function, outcome, reason=None, attempt=1, minutes_ago=5, generation=None):
    return RunRecord(function, "e1", outcome, attempt, reason, None, None, NOW - dt.timedelta(minutes=minutes_ago))


def exhausted_load():
    return rec("load_postgres", "dead_lettered", "retries_exhausted", attempt=5)


# --- the schedule a repair message carries ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("17 * * * *", "Etc/UTC", dt.datetime(2026, 12, 6, 11, 17, tzinfo=dt.UTC)),
        ("*/15 * * * *", "Etc/UTC", dt.datetime(2026, 12, 6, 10, 30, tzinfo=dt.UTC)),
        ("0 5 * * *", "Etc/UTC", dt.datetime(2026, 12, 7, 5, 0, tzinfo=dt.UTC)),
        ("0 5 * * *", "America/New_York", dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC)),
        ("0 0 1 1 *", "Etc/UTC", dt.datetime(2027, 1, 1, 0, 0, tzinfo=dt.UTC)),
        ("30 9 * * 1", "Etc/UTC", dt.datetime(2026, 12, 7, 9, 30, tzinfo=dt.UTC)),  # 2026-12-07 is a Monday
    ],
)
def test_cron_next_run(text, zone, expected):
    assert parse_schedule(text, zone).next_run(NOW) == expected


def test_every_counts_from_the_last_run():
    every = parse_schedule("@every 60s")
    assert every.next_run(NOW, NOW - dt.timedelta(seconds=150)) == NOW + dt.timedelta(seconds=30)
    assert every.next_run(NOW, NOW) == NOW + dt.timedelta(seconds=60)


@pytest.mark.parametrize(
    ("text", "zone", "field"),
    [("17 * * *", "Etc/UTC", "schedule"), ("61 * * * *", "Etc/UTC", "schedule"), ("@every 0s", "Etc/UTC", "schedule"),
     (17, "Etc/UTC", "schedule"), ("17 * * * *", "Mars/Olympus", "time_zone")],
)  # fmt: skip
def test_a_bad_schedule_names_its_field(text, zone, field):
    with pytest.raises(ValidationError) as error:
        parse_schedule(text, zone)
    assert error.value.field == field


def test_next_repair_from_the_marker_the_repair_wrote():
    marker = {"ran_at": (NOW - dt.timedelta(minutes=3)).isoformat(), "schedule": "17 * * * *", "time_zone": "Etc/UTC"}
    assert repair_schedule.next_from_marker(marker, NOW) == dt.datetime(2026, 12, 6, 11, 17, tzinfo=dt.UTC)
    assert repair_schedule.next_from_marker({"ran_at": NOW.isoformat(), "schedule": None}, NOW) is None
    assert repair_schedule.next_from_marker("junk", NOW) is None


# --- the repair message -----------------------------------------------------------------------------------


def test_a_ledger_repair_takes_no_range_and_carries_its_schedule():
    request = parse_backfill(
        {"repair": True, "from_ledger": True, "services": ["yellow", "green"], "schedule": "17 * * * *"}, 3660, NOW
    )
    assert request.from_ledger and request.repair and request.schedule == "17 * * * *"
    assert request.services == ("yellow", "green")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"from_ledger": True}, "from_ledger"),
        ({"repair": True, "from_ledger": True, "last_days": 45}, "last_days"),
        ({"repair": True, "from_ledger": True, "start": "2021-01-01"}, "start"),
        ({"repair": True, "from_ledger": True, "schedule": "soon"}, "schedule"),
        ({"repair": True, "from_ledger": True, "time_zone": "Etc/UTC"}, "time_zone"),
        ({"repair": True, "last_days": 45, "schedule": "17 * * * *"}, "schedule"),
        ({"repair": True, "from_ledger": "yes"}, "from_ledger"),
    ],
)
def test_ledger_repair_messages_are_validated(body, field):
    with pytest.raises(ValidationError) as error:
        parse_backfill(body, 3660, NOW)
    assert error.value.field == field


# --- what heals a date ------------------------------------------------------------------------------------


def test_a_load_dead_lettered_after_its_retries_is_repaired_with_a_count():
    v = heal.verdict("dead_lettered", 100, exhausted_load(), [exhausted_load()])
    assert (v.action, v.attempt, v.trouble) == ("repair", 1, "dead_lettered:load_postgres:retries_exhausted")
    earlier = rec("repair", "queued", v.trouble, attempt=2)
    assert heal.verdict("dead_lettered", 100, exhausted_load(), [exhausted_load(), earlier]).attempt == 3


def test_the_same_trouble_after_max_repairs_is_left_to_a_person_and_another_trouble_counts_afresh():
    trouble = "dead_lettered:load_postgres:retries_exhausted"
    tried = rec("repair", "queued", trouble, attempt=heal.MAX_REPAIRS)
    v = heal.verdict("dead_lettered", 100, exhausted_load(), [exhausted_load(), tried])
    assert (v.action, v.attempt) == ("person", heal.MAX_REPAIRS)
    other = rec("repair", "queued", "partial", attempt=heal.MAX_REPAIRS)
    assert heal.verdict("dead_lettered", 100, exhausted_load(), [exhausted_load(), other]).attempt == 1


@pytest.mark.parametrize(
    ("state", "lake", "run", "action"),
    [
        ("complete", 10, None, "nothing"),
        ("queued", None, rec("backfill", "queued"), "wait"),
        ("running", None, rec("ingest", "running"), "wait"),
        ("retrying", 10, rec("load_postgres", "retrying", "connection_failed"), "wait"),
        ("partial", 10, None, "repair"),
        ("mismatch", 10, None, "repair"),
        ("undelivered", None, rec("backfill", "undelivered", "message_not_delivered"), "repair"),
        ("dead_lettered", None, rec("ingest", "dead_lettered", "retries_exhausted"), "repair"),
        ("dead_lettered", None, rec("ingest", "dead_lettered", "source_not_found"), "person"),
        ("failed", 10, None, "person"),
        ("missing", None, None, "person"),
    ],
)
def test_verdicts(state, lake, run, action):
    assert heal.verdict(state, lake, run, [run] if run else []).action == action


@pytest.mark.parametrize("state", ["partial", "mismatch"])
def test_a_partition_written_since_the_last_repair_waits_for_its_loads(state):
    """Before: a partial date was republished (with force) by the first repair after its write while
    its finalize notification still sat in the loaders' backlog; clean chaos runs republished up to
    154 dates at once that way, and left 24-31 to a person after MAX_REPAIRS (issue 21)."""
    last_repair = NOW - dt.timedelta(minutes=5)
    fresh = heal.verdict(state, 100, None, [], written_at=NOW - dt.timedelta(minutes=1), last_repair=last_repair)
    assert fresh.action == "wait" and "repair after next" in fresh.why
    old = heal.verdict(state, 100, None, [], written_at=NOW - dt.timedelta(minutes=9), last_repair=last_repair)
    assert (old.action, old.attempt) == ("repair", 1)
    never = heal.verdict(state, 100, None, [], written_at=NOW - dt.timedelta(minutes=1), last_repair=None)
    assert never.action == "repair", "with no repair run on record, nothing is waited for"
    held = rec("repair", "queued", state, attempt=heal.MAX_REPAIRS)
    assert heal.verdict(state, 100, None, [held], written_at=NOW, last_repair=last_repair).action == "wait"


def test_the_wait_for_loads_is_not_a_wait_for_an_exhausted_loader():
    load = exhausted_load()
    v = heal.verdict("dead_lettered", 100, load, [load], written_at=NOW, last_repair=NOW - dt.timedelta(minutes=5))
    assert v.action == "repair"


def test_a_person_gets_the_replay_command_for_a_permanent_dead_letter():
    run = rec("ingest", "dead_lettered", "source_not_found")
    told = heal.explain("dead_lettered", None, run, [run], "yellow", DAY, NOW)
    assert told["action"] == "person" and told["when"] is None
    assert told["commands"]["local"] == (
        "./local_emulator.sh replay --reason source_not_found --function ingest --service yellow --date 2021-08-10"
    )
    assert "replay_cli" in told["commands"]["cloud"] and "--date 2021-08-10" in told["commands"]["cloud"]


# --- status explains every date that is not complete ------------------------------------------------------


def test_status_says_what_repairs_a_partial_date_and_when():
    """Before: 'not in postgres' and nothing about what will repair it or when (issue 21, part 2)."""
    next_run = dt.datetime(2026, 12, 6, 11, 17, tzinfo=dt.UTC)
    lake = {DAY: LakeDay(100, 0, 7, NOW - dt.timedelta(hours=1))}
    runs = {DAY: [rec("ingest", "succeeded"), rec("load_bigquery", "succeeded")]}
    report = build_report("yellow", DAY, DAY, lake, {DAY: 100}, {}, {}, runs=runs, now=NOW, next_repair=next_run)
    (day,) = report.days
    assert day.state == "partial"
    assert day.explanation["action"] == "repair" and day.explanation["when"] == next_run.isoformat()
    assert "attempt 1 of" in day.explanation["remedy"]
    assert report.as_dict()["next_repair"] == next_run.isoformat()


def test_status_says_a_partition_written_since_the_last_repair_is_waited_for():
    last_repair, next_run = NOW - dt.timedelta(minutes=10), NOW + dt.timedelta(minutes=50)
    written = NOW - dt.timedelta(minutes=2)
    lake = {DAY: LakeDay(100, 0, 7, written)}
    runs = {DAY: [rec("ingest", "succeeded")]}
    report = build_report(
        "yellow", DAY, DAY, lake, {}, {}, {}, runs=runs, now=NOW, next_repair=next_run, last_repair=last_repair
    )
    (day,) = report.days
    assert day.state == "partial" and day.explanation["action"] == "wait"
    assert "may still be on their way" in day.explanation["remedy"]
    body = report.as_dict()
    assert body["last_repair"] == last_repair.isoformat()
    assert body["dates"][0]["lake_written_at"] == written.isoformat()


def test_the_repair_marker_says_when_it_ran():
    assert repair_schedule.ran_at({"ran_at": "2026-12-06T10:15:00"}) == NOW - dt.timedelta(minutes=5)
    assert repair_schedule.ran_at({"ran_at": "2026-12-06T10:15:00+00:00"}) == NOW - dt.timedelta(minutes=5)
    assert repair_schedule.ran_at({"ran_at": "soon"}) is None
    assert repair_schedule.ran_at(None) is None and repair_schedule.ran_at({}) is None


def test_a_queued_record_older_than_the_longest_delivery_reads_undelivered():
    budget = ledger_record.UNDELIVERED_AFTER_SECONDS
    assert budget == 10 * (600 + 600)
    young = rec("backfill", "queued", minutes_ago=budget // 60 - 1)
    old = rec("backfill", "queued", minutes_ago=budget // 60 + 1)
    assert ledger_read.in_flight([young], NOW).outcome == "queued"
    assert ledger_read.in_flight([old], NOW).outcome == "undelivered"
    report = build_report("yellow", DAY, DAY, {}, {}, {}, {}, runs={DAY: [old]}, now=NOW)
    assert report.days[0].label == "undelivered (backfill)"
    assert report.days[0].explanation["action"] == "repair"


def test_spans_merge_near_dates_and_bound_each_read():
    days = [dt.date(2021, 1, 1), dt.date(2021, 1, 20), dt.date(2021, 3, 1), dt.date(2015, 6, 1)]
    assert repair.spans(days) == [
        (dt.date(2015, 6, 1), dt.date(2015, 6, 1)),
        (dt.date(2021, 1, 1), dt.date(2021, 1, 20)),
        (dt.date(2021, 3, 1), dt.date(2021, 3, 1)),
    ]
    ten_years = [dt.date(2012, 1, 1) + dt.timedelta(days=i) for i in range(3653)]
    found = repair.spans(ten_years)
    assert len(found) == 10 and all((end - start).days < repair.MAX_SPAN_DAYS for start, end in found)


def test_text_and_html_show_what_heals_each_date():
    from shared.operate.status_page import render_html, render_text

    dead = rec("ingest", "dead_lettered", "source_not_found")
    lake = {DAY: LakeDay(100, 0, 7, NOW - dt.timedelta(hours=1))}
    other = DAY + dt.timedelta(days=1)
    report = build_report(
        "yellow", DAY, other, lake, {DAY: 100}, {}, {}, runs={other: [dead]}, now=NOW, next_repair=NOW
    )
    text = render_text(report)
    assert f"next scheduled repair: {NOW.isoformat()}" in text
    assert f"{DAY.isoformat()} next: the scheduled repair republishes it (attempt 1 of 5) at {NOW.isoformat()}" in text
    assert f"{other.isoformat()} local: ./local_emulator.sh replay --reason source_not_found" in text
    page = render_html(report)
    assert 'data-action="repair"' in page and 'data-action="person"' in page
    assert "<code>./local_emulator.sh replay --reason source_not_found" in page


class Listing:
    """A bucket's listing as plain data: run records' names and metadata."""

    def __init__(self, records: dict[str, dict[str, str]]) -> None:
        self.records = records

    def list_blobs(self, prefix: str, **_: object) -> list:
        from types import SimpleNamespace

        return [
            SimpleNamespace(name=name, metadata=meta, generation=7, updated=None)
            for name, meta in self.records.items()
            if name.startswith(prefix)
        ]


def test_the_ledger_repair_plans_every_touched_date_whatever_its_calendar_date_and_within_its_bound():
    """Before: the scheduled `{"last_days": 45, "repair": true}` planned 0 dates for a 2021 month."""
    from shared.core.settings import Settings

    when = (NOW - dt.timedelta(minutes=30)).isoformat()
    trouble = "dead_lettered:load_postgres:retries_exhausted"
    days = [dt.date(2021, 8, 10), dt.date(2021, 8, 11), dt.date(2021, 8, 12), dt.date(2015, 3, 3)]

    def record(day, function, outcome, reason=None, attempt="5"):
        name = f"runs/yellow/pickup_date={day.isoformat()}/{function}/{function}-1.json"
        meta = {"outcome": outcome, "attempt": attempt, "updated_at": when}
        return name, {**meta, "reason": reason} if reason else meta

    listing = Listing(
        dict(
            [
                record(days[0], "load_postgres", "dead_lettered", "retries_exhausted"),
                record(days[1], "load_postgres", "dead_lettered", "retries_exhausted"),
                record(days[1], "repair", "queued", trouble, attempt=str(heal.MAX_REPAIRS)),
                record(days[1], "ingest", "succeeded"),  # took the repair's message
                record(days[2], "load_postgres", "succeeded"),
                record(days[2], "repair", "queued", trouble, attempt="1"),
                record(days[3], "ingest", "dead_lettered", "source_not_found"),
            ]
        )
    )
    spans_read = []

    def reader(service, start, end, settings, runs):
        spans_read.append((start, end))
        lake = {d: LakeDay(100, 0, 7, NOW) for d in days[:3]}
        return build_report(
            service, start, end, lake, {d: 100 for d in days[:3]}, {days[2]: 100}, {}, runs=runs, now=NOW
        )

    request = parse_backfill({"repair": True, "from_ledger": True}, 3660, NOW)
    settings = Settings.from_env(
        {"GCP_PROJECT": "p", "DEAD_LETTER_TOPIC": "d", "INGEST_TOPIC": "i", "LAKE_BUCKET": "b"}
    )
    found = repair.plan(request, settings, listing, reader)
    assert spans_read == [(days[3], days[3]), (days[0], days[2])]  # one read per span of touched dates
    assert [(m.date, m.force) for m in found.messages] == [(days[0], True)]
    assert found.verdicts[("yellow", days[0])].attempt == 1
    assert found.left_to_person == {
        "yellow": {
            days[1].isoformat(): f"the scheduled repair tried 5 times and it still ends {trouble}",
            days[3].isoformat(): "ingest gave up (source_not_found): the same input fails again",
        }
    }
    assert found.complete == 1 and found.cleared == [
        f"runs/yellow/pickup_date={days[2].isoformat()}/repair/attempts.json"
    ]


TWO_DAYS = [dt.date(2021, 8, 10), dt.date(2021, 8, 11)]


def _ingested_partitions(written: dict[dt.date, dt.datetime], last_repair: dt.datetime | None):
    """A ledger where ingest succeeded for each date, and a span reader whose lake holds each
    date's partition written at `written[date]`, in no destination yet (plain data)."""
    when = (NOW - dt.timedelta(minutes=30)).isoformat()
    name = "runs/yellow/pickup_date={}/ingest/ingest-1.json"
    listing = Listing({name.format(d.isoformat()): {"outcome": "succeeded", "updated_at": when} for d in written})

    def reader(service, start, end, settings, runs):
        lake = {d: LakeDay(100, 0, 7, at) for d, at in written.items()}
        return build_report(service, start, end, lake, {}, {}, {}, runs=runs, now=NOW, last_repair=last_repair)

    return listing, reader


def test_the_ledger_repair_waits_for_partitions_written_since_its_last_run():
    old, fresh = TWO_DAYS
    written = {old: NOW - dt.timedelta(minutes=20), fresh: NOW - dt.timedelta(minutes=3)}
    listing, reader = _ingested_partitions(written, last_repair=NOW - dt.timedelta(minutes=10))
    request = parse_backfill({"repair": True, "from_ledger": True}, 3660, NOW)
    found = repair.plan(request, SETTINGS, listing, reader)
    assert [m.date for m in found.messages] == [old], "only the partition older than the last run"
    assert found.waiting == 1


def test_a_first_repair_run_waits_one_period_of_its_schedule():
    """Before: with no previous run on record nothing was waited for, and the first repair of a
    fresh stack republished 165 dates of a clean chaos run whose loads were only queued."""
    old, fresh = TWO_DAYS
    written = {old: NOW - dt.timedelta(minutes=5), fresh: NOW - dt.timedelta(seconds=30)}
    listing, reader = _ingested_partitions(written, last_repair=None)  # no run on record
    scheduled = parse_backfill({"repair": True, "from_ledger": True, "schedule": "@every 60s"}, 3660, NOW)
    found = repair.plan(scheduled, SETTINGS, listing, reader, now=NOW)
    assert [m.date for m in found.messages] == [old] and found.waiting == 1
    by_hand = parse_backfill({"repair": True, "from_ledger": True}, 3660, NOW)  # no schedule: nothing to wait by
    assert [m.date for m in repair.plan(by_hand, SETTINGS, listing, reader, now=NOW).messages] == TWO_DAYS


@pytest.mark.parametrize(
    ("text", "period"),
    [
        ("@every 60s", dt.timedelta(seconds=60)),
        ("17 * * * *", dt.timedelta(hours=1)),
        ("0 5 * * *", dt.timedelta(days=1)),
    ],
)
def test_a_schedule_s_period(text, period):
    assert parse_schedule(text).period(NOW) == period
