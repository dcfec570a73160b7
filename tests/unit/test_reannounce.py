"""When a plain republish re-announces an up-to-date partition (shared/ingest/reannounce.py), from plain
run records and ages; and that the run records name the generation the decision compares.

The integration test (tests/integration/test_repair.py) loses a real finalize event on the
running stack and repairs it with a plain republish.
"""

from __future__ import annotations

import datetime as dt

import pytest

from shared.core import ledger, ledger_read, ledger_record
from shared.core.ledger_read import RunRecord
from shared.core.ledger_record import DEAD_LETTERED, RETRYING, RUNNING, SKIPPED, SUCCEEDED
from shared.ingest import reannounce
from shared.ingest.reannounce import (
    ABANDONED,
    IN_FLIGHT,
    LOADED,
    NOT_LOADED,
    PENDING,
    REANNOUNCED,
    UNKNOWN_GENERATION,
    decide,
)
from tests.gcs_events import gcs_finalized_event, message_published_event, pubsub_notification_event
from tests.unit.test_ledger import DAY, FakeBucket

NOW = dt.datetime(2026, 1, 2, 12, 0, tzinfo=dt.UTC)
GEN, OLD = 1700000000000002, 1700000000000001
OLD_ENOUGH = reannounce.REANNOUNCE_GRACE_SECONDS + 1  # the partition's age, in seconds


def rec(function, outcome, generation=GEN, seconds_ago=30, event_id="1"):
    return RunRecord(
        function, event_id, outcome, 1, None, None, None, NOW - dt.timedelta(seconds=seconds_ago), generation
    )


WROTE = rec("ingest", SUCCEEDED)  # ingest's record of writing GEN: the ledger knows GEN
BQ_OK, PG_OK = rec("load_bigquery", SUCCEEDED), rec("load_postgres", SUCCEEDED)


@pytest.mark.parametrize(
    "records, age, expected, loaders",
    [
        # loaded everywhere: a duplicate delivery rewrites nothing
        ([WROTE, BQ_OK, PG_OK], OLD_ENOUGH, LOADED, (LOADED, LOADED)),
        ([WROTE, BQ_OK, rec("load_postgres", SKIPPED)], OLD_ENOUGH, LOADED, (LOADED, LOADED)),  # already_loaded
        # the issue: Postgres never got GEN's finalize event
        ([WROTE, BQ_OK], OLD_ENOUGH, REANNOUNCED, (LOADED, NOT_LOADED)),
        ([WROTE], OLD_ENOUGH, REANNOUNCED, (NOT_LOADED, NOT_LOADED)),
        # ...or loaded an older generation only (a stale skip of the old one proves nothing either)
        (
            [WROTE, BQ_OK, rec("load_postgres", SUCCEEDED, OLD, 900), rec("load_postgres", SKIPPED, OLD, 60, "2")],
            OLD_ENOUGH,
            REANNOUNCED,
            (LOADED, NOT_LOADED),
        ),
        # ...but its event may still be on its way: within the grace, wait
        ([WROTE, BQ_OK], OLD_ENOUGH - 2, PENDING, (LOADED, PENDING)),
        ([WROTE], 1, PENDING, (PENDING, PENDING)),
        # a loader working on it: leave the date alone, even if the other one never got its event
        ([WROTE, BQ_OK, rec("load_postgres", RUNNING)], OLD_ENOUGH, IN_FLIGHT, (LOADED, IN_FLIGHT)),
        ([WROTE, rec("load_bigquery", RETRYING)], OLD_ENOUGH, IN_FLIGHT, (IN_FLIGHT, NOT_LOADED)),
        # two events of one generation (duplicate notifications): any success is a success
        (
            [WROTE, BQ_OK, rec("load_postgres", DEAD_LETTERED, event_id="2"), PG_OK],
            OLD_ENOUGH,
            LOADED,
            (LOADED, LOADED),
        ),
        # a loader gave up on GEN: whoever republishes asks for a retry, no need to wait for the grace
        ([WROTE, BQ_OK, rec("load_postgres", DEAD_LETTERED)], 10, REANNOUNCED, (LOADED, DEAD_LETTERED)),
        # an attempt that crashed on its last delivery: no update for ABANDONED_AFTER_SECONDS
        (
            [WROTE, BQ_OK, rec("load_postgres", RUNNING, seconds_ago=reannounce.ABANDONED_AFTER_SECONDS + 1)],
            OLD_ENOUGH,
            REANNOUNCED,
            (LOADED, ABANDONED),
        ),
        (
            [WROTE, BQ_OK, rec("load_postgres", RUNNING, seconds_ago=ledger_record.LOST_AFTER_SECONDS + 1)],
            OLD_ENOUGH,
            IN_FLIGHT,
            (LOADED, IN_FLIGHT),
        ),  # lost, so retrying: still within the retries
        # the ledger knows nothing of GEN (records expired, or older than generations in records):
        # cannot tell loaded from lost, so nothing; the scheduled repair reads the destinations
        ([], OLD_ENOUGH, UNKNOWN_GENERATION, (NOT_LOADED, NOT_LOADED)),
        (
            [rec("ingest", SUCCEEDED, None), rec("load_bigquery", SUCCEEDED, None)],
            OLD_ENOUGH,
            UNKNOWN_GENERATION,
            (NOT_LOADED, NOT_LOADED),
        ),
        # the generation is known from a loader's event alone (ingest's record expired first)
        ([BQ_OK], OLD_ENOUGH, REANNOUNCED, (LOADED, NOT_LOADED)),
    ],
)
def test_decide(records, age, expected, loaders):
    decision = decide(records, GEN, age, NOW)
    assert decision.why == expected
    assert decision.reannounce == (expected == REANNOUNCED)
    assert (decision.loaders["load_bigquery"], decision.loaders["load_postgres"]) == loaders


def test_a_republish_while_the_reannounced_loads_run_reannounces_nothing():
    """The re-announce wrote NEW: young, then loaded by the loaders; never re-announced again."""
    new = GEN + 1
    wrote_new = rec("ingest", SKIPPED, new, 5, event_id="9")  # the re-announcing delivery names NEW
    before = [WROTE, BQ_OK, wrote_new]
    assert decide(before, new, 5, NOW).why == PENDING
    running = before + [rec("load_bigquery", RUNNING, new, 1, "3"), rec("load_postgres", RUNNING, new, 1, "3")]
    assert decide(running, new, 5, NOW).why == IN_FLIGHT
    assert decide(running, new, OLD_ENOUGH, NOW).why == IN_FLIGHT
    done = before + [rec("load_bigquery", SUCCEEDED, new, 1, "3"), rec("load_postgres", SUCCEEDED, new, 1, "3")]
    assert decide(done, new, OLD_ENOUGH, NOW).why == LOADED


# --- the records name the generation -----------------------------------------------------------------


@pytest.mark.parametrize(
    "event, generation",
    [
        (gcs_finalized_event("lake", "trips/yellow/pickup_date=2021-01-15/data.parquet", GEN), GEN),
        (pubsub_notification_event("lake", "trips/yellow/pickup_date=2021-01-15/data.parquet", GEN), GEN),
        (message_published_event({"date": "2021-01-15"}), None),  # an ingest message names none
    ],
)
def test_a_loader_record_names_its_events_generation_through_a_listing(event, generation):
    bucket = FakeBucket()
    token = ledger.begin("load_postgres", event, "lake")
    try:
        run = ledger.current()
        run.bucket, run.service, run.date = bucket, "yellow", DAY
        ledger.finish(run, SUCCEEDED, rows=3)
    finally:
        ledger.end(token)
    assert bucket.record(run.name)["generation"] == generation
    [record] = ledger_read.read_runs(bucket, "yellow", DAY, DAY)[DAY]
    assert record.generation == generation and record.as_dict()["generation"] == generation


def test_ingest_names_the_generation_it_wrote():
    token = ledger.begin("ingest", message_published_event({"date": "2021-01-15"}), "lake")
    try:
        reannounce.record_generation(GEN)
        assert ledger.current().generation == GEN
    finally:
        ledger.end(token)
    reannounce.record_generation(OLD)  # outside a function boundary: nothing to name, no error
