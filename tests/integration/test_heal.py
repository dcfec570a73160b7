"""Healing without a person, against the running stack (issue 21, parts 1, 2 and 7).

A PostgreSQL outage longer than the push retries dead-letters the days being loaded; before, the
hourly repair's `{"last_days": 45, "repair": true}` planned 0 dates for a backfilled 2021 month and
nothing ran it locally, so they stayed dead-lettered until a person acted. Now the stack's repair
scheduler (local/stack/repair_scheduler.py, the same message as Terraform's job) repairs every date
the run ledger touched, and also releases month claims whose holder died.

The scheduler runs here in-process with a short interval and only for green (so it touches no
other test's dates), against the stack's relay with the suite's explicit short retry budget
(`local_emulator.sh test`: TAXI_RELAY_BACKOFF_SECONDS=1,10, MAX_DELIVERY_ATTEMPTS=5).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time
from typing import Any

import pytest
import requests

from shared.core import clients, paths
from shared.core.settings import Settings
from shared.ingest import stale_claims

SERVICE = "green"
DATES = ["2021-08-10", "2021-08-11", "2021-08-12", "2021-08-13"]  # no other test uses green 2021-08
OUTAGE_SECONDS = 60
REPAIR_INTERVAL_SECONDS = 20
HEAL_TIMEOUT_SECONDS = 420


def lake_bucket() -> Any:
    clients.reset()
    return clients.storage().bucket(Settings.from_env().lake_bucket)


def write_claim(bucket: Any, month: str, split_id: str, manifest: bool = False) -> tuple[str, str]:
    """A claim left by a killed holder, its split's one file and, if `manifest`, a manifest naming it."""
    base = f"staging/{SERVICE}/month={month}/"
    bucket.blob(base + "_claim").upload_from_string(json.dumps({"split_id": split_id}))
    split_file = f"{base}split={split_id}/pickup_date={month}-03/trips.parquet"
    bucket.blob(split_file).upload_from_string(b"half written")
    if manifest:
        bucket.blob(base + "_manifest.json").upload_from_string(json.dumps({"split_id": split_id}))
    return base + "_claim", split_file


def test_a_stale_claim_is_released_and_its_unfinished_split_removed(stack):
    """Part 7: no later date of the month needs the claim; the repair (or anyone) releases it."""
    bucket = lake_bucket()
    dead_claim, dead_split = write_claim(bucket, "2018-02", "abc0000000000001")
    done_claim, done_split = write_claim(bucket, "2018-03", "abc0000000000002", manifest=True)
    released = stale_claims.release_stale(bucket, SERVICE)  # (an earlier run's leftovers may go)
    assert dead_claim not in released and done_claim not in released, "a fresh claim is its holder's"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=stale_claims.STALE_SECONDS + 5)
    assert sorted(stale_claims.release_stale(bucket, SERVICE, now=later)) == [dead_claim, done_claim]
    assert bucket.get_blob(dead_claim) is None and bucket.get_blob(dead_split) is None
    assert bucket.get_blob(done_claim) is None
    assert bucket.get_blob(done_split) is not None, "a split its manifest names is finished work"


def status(urls: dict[str, str]) -> dict[str, dict] | None:
    """Per date, or None while status cannot tell (it needs PostgreSQL)."""
    try:
        response = requests.get(
            urls["status"], params={"service": SERVICE, "start": DATES[0], "end": DATES[-1]}, timeout=60
        )
    except requests.RequestException:
        return None
    return {d["date"]: d for d in response.json()["dates"]} if response.status_code == 200 else None


def forget_in_postgres() -> None:
    import pg8000.native

    connection = pg8000.native.Connection(
        user=os.environ["PG_USER"],
        password=os.environ.get("PG_PASSWORD") or None,
        host=os.environ["PG_HOST"],
        port=int(os.environ["PG_PORT"]),
        database=os.environ["PG_DATABASE"],
    )
    try:
        table = f"{os.environ.get('PG_SCHEMA', 'ny_taxi')}.{SERVICE}_trips"
        if connection.run("SELECT to_regclass(:t) IS NOT NULL", t=table)[0][0]:
            connection.run(f"DELETE FROM {table} WHERE pickup_date BETWEEN :a AND :b", a=DATES[0], b=DATES[-1])
    finally:
        connection.close()


def stop_postgres() -> int:
    pid_file = os.path.join(os.environ.get("TAXI_STATE_DIR") or ".state", "pids", "postgres.pid")
    pid = int(open(pid_file).read().split()[0])
    os.killpg(pid, signal.SIGINT)  # PostgreSQL's fast shutdown, as `down` does
    return pid


def start_postgres() -> None:
    """`./local_emulator.sh up` starts what is not running: PostgreSQL, on its data and port."""
    from local.stack import throwaway

    throwaway.up({k: v for k, v in os.environ.items() if k != "STACK_STARTED_FILE"})


def ledger_outcomes(bucket: Any, function: str) -> dict[str, str]:
    """Each date's latest record of `function` in the run ledger (readable while PostgreSQL is down)."""
    from shared.core import ledger_read

    start, end = dt.date.fromisoformat(DATES[0]), dt.date.fromisoformat(DATES[-1])
    runs = ledger_read.read_runs(bucket, SERVICE, start, end)
    found = {}
    for day, records in runs.items():
        latest = [r for r in ledger_read.latest_by_function(records) if r.function == function]
        if latest:
            found[day.isoformat()] = latest[0].outcome
    return found


def test_a_postgres_outage_during_a_backfill_ends_complete_with_no_manual_step(urls, gcloud):
    """Part 2: the retries first (they run out: the outage is longer), then the scheduled repair;
    every date ends complete and nobody acts. Status explains the dead-lettered dates meanwhile."""
    from local.stack.repair_scheduler import RepairScheduler

    bucket = lake_bucket()
    claim, split_file = write_claim(bucket, "2019-04", "abc0000000000003")  # chaos seed 7's leftover
    forget_in_postgres()  # an earlier run's rows would make the dates a mismatch, not dead-lettered
    stop_postgres()  # before the backfill, so that every date's load meets the outage
    stopped = time.monotonic()
    gcloud(os.environ["BACKFILL_TOPIC"], {"start": DATES[0], "end": DATES[-1], "service": SERVICE, "force": True})
    try:  # the loads' retries run out during the outage: every date's load_postgres dead-letters
        while time.monotonic() < stopped + OUTAGE_SECONDS:
            outcomes = ledger_outcomes(bucket, "load_postgres")
            time.sleep(2)
    finally:
        start_postgres()
    restarted = time.monotonic()
    assert outcomes == dict.fromkeys(DATES, "dead_lettered"), outcomes
    before = status(urls)
    assert before is not None and {d["state"] for d in before.values()} == {"dead_lettered"}, before
    for day in before.values():  # what happened and what heals it, for a person reading status
        told = day["explanation"]
        assert told["action"] == "repair" and "retries_exhausted" in told["happened"], told
        assert told["commands"] is None
    seen: dict[str, set[str]] = {d: set() for d in DATES}
    with RepairScheduler(clients.topic_path(os.environ["BACKFILL_TOPIC"]), REPAIR_INTERVAL_SECONDS, [SERVICE]):
        deadline = restarted + HEAL_TIMEOUT_SECONDS
        while True:
            days = status(urls)
            for date, day in (days or {}).items():
                seen[date].add(day["label"] if "label" in day else day["state"])
            if days and all(day["state"] == "complete" for day in days.values()):
                healed = time.monotonic()
                break
            assert time.monotonic() < deadline, f"not healed {HEAL_TIMEOUT_SECONDS} s after the outage: {seen}"
            time.sleep(2)
    assert all(day["lake_rows"] == day["bigquery_rows"] == day["postgres_rows"] > 0 for day in days.values())
    # The old scheduled message never reached these dates (0 planned); the ledger repair has nothing left.
    old = requests.post(
        urls["backfill_http"], json={"last_days": 45, "repair": True, "service": SERVICE, "dry_run": True}, timeout=120
    )
    assert old.status_code == 200 and old.json()["planned"] == 0, old.text
    new = requests.post(
        urls["backfill_http"],
        json={"repair": True, "from_ledger": True, "services": [SERVICE], "dry_run": True},
        timeout=120,
    )
    assert new.status_code == 200 and new.json()["planned"] == 0 and new.json()["skipped_complete"] >= 4, new.text
    # Part 7: the claim no later date needed was released by the scheduled repair, its split removed.
    assert bucket.get_blob(claim) is None and bucket.get_blob(split_file) is None
    print(
        f"outage {restarted - stopped:.0f} s; all {len(DATES)} dates complete {healed - restarted:.0f} s after "
        f"PostgreSQL came back (repair every {REPAIR_INTERVAL_SECONDS} s); states seen: {seen}"
    )


@pytest.fixture(autouse=True)
def _paths_are_the_lakes() -> None:
    """The claim names above are the lake's (shared/core/paths.py)."""
    assert paths.staging_claim(SERVICE, 2019, 4) == f"staging/{SERVICE}/month=2019-04/_claim"
