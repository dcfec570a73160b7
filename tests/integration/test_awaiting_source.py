"""Days passing against a source that publishes months late: no dead letter, no alert (issue 18, part 5).

Through the running stack, with all defaults (SOURCE_GRACE_DAYS 92, the catch-up message Terraform's
daily_catch_up job publishes): the stack's TLC server is told which green month it has published up
to (`.published_through/green`), and each simulated day is one catch-up message to the backfill
topic, as Cloud Scheduler sends it every morning.
- day 1: TLC has published up to the month before last. Every date of last month and of this month
  so far is `awaiting_source` in status: acknowledged, no dead letter;
- day 2: TLC publishes last month. That morning's catch-up loads every date of it (complete in the
  lake, BigQuery and Postgres); this month's dates stay `awaiting_source`;
- day 3: the next catch-up republishes nothing of last month (complete) and this month still waits.
Throughout: no dead letter for any of these dates, no ERROR line and no `behind` freshness line in
the functions' logs, and each catch-up judged green `up_to_date` with the source: nothing the dead
letter, function error or freshness alerts (infra/terraform/monitoring.tf) would fire on.
The dates are this month and last month by the machine's clock (green, which no other test loads
this recent), because the grace period is counted from the real today.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import pytest
from google.api_core.exceptions import NotFound

from shared.core import clients, messages
from shared.core.settings import Settings
from tests.integration import stack_http
from tests.integration.months import forget, stack_tlc_dir

SERVICE = "green"
TODAY = messages.today_in_new_york()
THIS_MONTH = TODAY.replace(day=1)
LAST_MONTH = (THIS_MONTH - dt.timedelta(days=1)).replace(day=1)
BEFORE = (LAST_MONTH - dt.timedelta(days=1)).replace(day=1)
DATES = [LAST_MONTH + dt.timedelta(days=i) for i in range((TODAY - LAST_MONTH).days)]  # ..yesterday
CATCH_UP = {"services": [SERVICE], "last_days": len(DATES), "catch_up": True}
LOGS = ("fn-ingest.log", "fn-backfill.log", "fn-load_bigquery.log", "fn-load_postgres.log")


def iso(days: list[dt.date]) -> list[str]:
    return [d.isoformat() for d in days]


def forget_destinations() -> None:
    """Earlier runs on this stack: the window's rows out of BigQuery and Postgres."""
    import pg8000.native

    settings = Settings.from_env()
    try:
        clients.bigquery().query(
            f"DELETE FROM `{settings.project}.{settings.bq_dataset}.{SERVICE}_trips` "
            f"WHERE pickup_date BETWEEN DATE '{DATES[0]}' AND DATE '{DATES[-1]}'"
        ).result()
    except NotFound:
        pass
    connection = pg8000.native.Connection(
        user=os.environ["PG_USER"],
        password=os.environ.get("PG_PASSWORD") or None,
        host=os.environ["PG_HOST"],
        port=int(os.environ["PG_PORT"]),
        database=os.environ["PG_DATABASE"],
    )
    try:
        for table in (f"{settings.pg_schema}.{SERVICE}_trips", f"{settings.pg_schema}.loads"):
            if connection.run("SELECT to_regclass(:t) IS NOT NULL", t=table)[0][0]:
                extra = " AND service = :s" if table.endswith(".loads") else ""
                connection.run(
                    f"DELETE FROM {table} WHERE pickup_date BETWEEN :a AND :b{extra}",
                    a=DATES[0],
                    b=DATES[-1],
                    **({"s": SERVICE} if extra else {}),
                )
    finally:
        connection.close()


@pytest.fixture
def late_source(stack):
    data_dir = stack_tlc_dir()
    through = data_dir / ".published_through" / SERVICE
    through.parent.mkdir(parents=True, exist_ok=True)
    through.write_text(f"{BEFORE:%Y-%m}\n")
    bucket = clients.storage().bucket(os.environ["LAKE_BUCKET"])
    files = [f"{SERVICE}/{SERVICE}_tripdata_{m:%Y-%m}.csv.gz" for m in (LAST_MONTH, THIS_MONTH)]
    forget(
        bucket,
        *(f"raw/{f}" for f in files),
        *(f"staging/{SERVICE}/month={m:%Y-%m}/" for m in (LAST_MONTH, THIS_MONTH)),
        *(f"{kind}/{SERVICE}/pickup_date={d}/" for kind in ("trips", "rejects", "runs") for d in iso(DATES)),
    )
    for name in files:  # generated and cached by an earlier run: generate afresh
        (data_dir / name).unlink(missing_ok=True)
    forget_destinations()
    marks = {name: _size(Path(os.environ["TAXI_STATE_DIR"]) / "logs" / name) for name in LOGS}
    yield through, marks
    through.unlink(missing_ok=True)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def new_log_lines(marks: dict[str, int]) -> list[dict]:
    """The functions' JSON log lines written since the test began."""
    lines = []
    for name, offset in marks.items():
        with (Path(os.environ["TAXI_STATE_DIR"]) / "logs" / name).open("rb") as handle:
            handle.seek(offset)
            for raw in handle.read().decode(errors="replace").splitlines():
                if raw.startswith("{"):
                    lines.append(json.loads(raw))
    return lines


def catch_up(pubsub) -> None:
    """What Terraform's daily_catch_up job publishes every morning."""
    topic = pubsub.publisher.topic_path(pubsub.project, os.environ["BACKFILL_TOPIC"])
    pubsub.publisher.publish(topic, json.dumps(CATCH_UP).encode()).result(timeout=30)


def states(days: dict[str, dict], dates: list[dt.date]) -> set[str]:
    return {days[d]["state"] for d in iso(dates)}


def test_months_published_late_wait_without_an_error_and_load_the_day_they_appear(
    late_source, urls, pubsub, dead_letters
):
    through, marks = late_source
    last, this = [d for d in DATES if d < THIS_MONTH], [d for d in DATES if d >= THIS_MONTH]
    judged = 0

    # Day 1: TLC has published up to the month before last.
    catch_up(pubsub)
    days = stack_http.wait_for(
        urls, SERVICE, iso(DATES), lambda d: states(d, DATES) == {"awaiting_source"}, "awaiting_source", timeout=300
    )
    explained = days[DATES[0].isoformat()]["explanation"]
    assert explained["action"] == "wait" and "catch-up" in explained["remedy"], explained
    judged += 1

    # Day 2: TLC publishes last month; that morning's catch-up loads it.
    through.write_text(f"{LAST_MONTH:%Y-%m}\n")
    catch_up(pubsub)
    days = stack_http.wait_for(
        urls,
        SERVICE,
        iso(DATES),
        lambda d: states(d, last) == {"complete"} and states(d, this) <= {"awaiting_source"},
        "last month complete, this month awaiting its source",
        timeout=600,
    )
    assert all(days[d]["lake_rows"] and days[d]["postgres_rows"] == days[d]["lake_rows"] for d in iso(last))
    judged += 1

    # Day 3: nothing of last month is asked for again; this month still waits.
    catch_up(pubsub)
    judged += 1
    deadline = time.monotonic() + 120
    while len(lines := _judgements(new_log_lines(marks))) < judged and time.monotonic() < deadline:
        time.sleep(2)
    assert [line["verdict"] for line in lines] == ["up_to_date"] * judged, lines
    assert lines[0]["dates_awaiting_source"] == 0, "day 1's catch-up saw the dates never asked for yet"
    assert lines[1]["dates_awaiting_source"] == len(DATES) and lines[1]["dates_behind"] == 0
    assert lines[2]["dates_awaiting_source"] == len(this)
    assert lines[2]["newest_month_at_source"] == f"{LAST_MONTH:%Y-%m}"
    stack_http.wait_for(
        urls,
        SERVICE,
        iso(DATES),
        lambda d: states(d, last) == {"complete"} and states(d, this) <= {"awaiting_source"},
        "the same after day 3",
        timeout=300,
    )
    runs = [x for x in new_log_lines(marks) if x.get("catch_up") and str(x.get("message")).startswith("backfill ")]
    assert [(x["published"], x["skipped_complete"]) for x in runs] == [
        (len(DATES), 0),
        (len(DATES), 0),
        (len(this), len(last)),
    ], "day 3 asks only for this month again"

    letters = [b for b in dead_letters(expected=1, timeout=10) if b.get("context", {}).get("date") in iso(DATES)]
    assert letters == [], "a month not published yet is never a dead letter"
    logged = new_log_lines(marks)
    alarming = [
        line
        for line in logged
        if line.get("severity") == "ERROR"
        or " rejected the event: " in str(line.get("message"))
        or str(line.get("message")).startswith("source freshness: behind")
    ]
    assert alarming == [], alarming
    awaiting = [line for line in logged if line.get("awaiting_source") and line.get("service") == SERVICE]
    assert awaiting and all(line["severity"] == "INFO" for line in awaiting)


def _judgements(lines: list[dict]) -> list[dict]:
    return [
        line
        for line in lines
        if str(line.get("message")).startswith("source freshness: ") and line.get("service") == SERVICE
    ]
