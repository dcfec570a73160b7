"""End to end through the running stack: nothing is called in-process.

A date message is published to the ingest topic; the stack's push relay pulls it
from the Pub/Sub emulator and pushes it to the ingest function (functions-framework);
the partition lands in fake-gcs-server; its finalize notification is pushed to both
loaders; the rows are then queried in the BigQuery emulator and in PostgreSQL.
Publishing the same message again must leave every destination exactly as it was.
Each of the three functions leaves its run ledger record (runs/) on the way.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import pytest

from shared.core import clients, ledger_read, ledger_record, paths
from shared.core.pg import connection
from shared.core.settings import Settings

DAY = dt.date(2021, 1, 20)
SERVICE = "yellow"
TIMEOUT = 240.0
INGEST_LOG = Path(__file__).resolve().parents[2] / ".state" / "logs" / "fn-ingest.log"


def publish(body: dict) -> None:
    publisher = clients.publisher()
    topic = os.environ.get("INGEST_TOPIC", "taxi-ingest")
    publisher.publish(clients.topic_path(topic), json.dumps(body).encode()).result(timeout=30)


def destination_state(settings: Settings) -> dict:
    """Rows of DAY in BigQuery and Postgres, and the generation Postgres' ledger holds."""
    table = f"{settings.project}.{settings.bq_dataset}.{SERVICE}_trips"
    try:
        rows = (
            clients.bigquery()
            .query(f"SELECT COUNT(*) AS n FROM `{table}` WHERE pickup_date = '{DAY.isoformat()}'")
            .result()
        )
        bigquery = next(iter(rows))["n"]
    except Exception:  # the table does not exist before the first load
        bigquery = None
    with connection(settings) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT to_regclass(%s)", (f"{settings.pg_schema}.{SERVICE}_trips",))
        if cursor.fetchone()[0] is None:
            return {"bigquery": bigquery, "postgres": None, "ledger": None}
        cursor.execute(f"SELECT count(*) FROM {settings.pg_schema}.{SERVICE}_trips WHERE pickup_date = %s", (DAY,))
        postgres = cursor.fetchone()[0]
        cursor.execute(
            f"SELECT generation FROM {settings.pg_schema}.loads WHERE service = %s AND pickup_date = %s", (SERVICE, DAY)
        )
        ledger = cursor.fetchone()
    return {"bigquery": bigquery, "postgres": postgres, "ledger": int(ledger[0]) if ledger else None}


def wait_for(predicate, what: str, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def skipped_lines() -> int:
    """Ingest outcomes saying DAY was already up to date (the function's own log)."""
    if not INGEST_LOG.exists():
        return 0
    needle = f'"date":"{DAY.isoformat()}"'
    return sum(1 for line in INGEST_LOG.read_text().splitlines() if needle in line and '"skipped":true' in line)


def test_a_published_date_reaches_gcs_bigquery_and_postgres_once(stack, settings_env):
    settings_env()  # fresh clients on the stack's own settings
    settings = Settings.from_env(function="status")
    bucket = clients.storage().bucket(settings.lake_bucket)
    name = paths.trips_object(SERVICE, DAY)
    before = bucket.get_blob(name)

    publish({"date": DAY.isoformat(), "service": SERVICE, "force": True})

    blob = wait_for(
        lambda: (b := bucket.get_blob(name)) and (before is None or b.generation != before.generation) and b,
        f"gs://{settings.lake_bucket}/{name}",
    )
    rows = int(blob.metadata["rows_written"])
    assert rows > 0
    assert int(blob.metadata["rows_read"]) == rows + int(blob.metadata["rows_rejected"])
    loaded = wait_for(
        lambda: (s := destination_state(settings))["ledger"] == blob.generation and s["bigquery"] == rows and s,
        "both loaders to load the new generation",
    )
    assert loaded == {"bigquery": rows, "postgres": rows, "ledger": blob.generation}

    already = skipped_lines()
    publish({"date": DAY.isoformat(), "service": SERVICE})  # the same date again, no force
    wait_for(lambda: skipped_lines() > already, "ingest to skip the up-to-date date", timeout=60)
    time.sleep(3)  # would-be loader events get time to arrive
    assert bucket.get_blob(name).generation == blob.generation, "the partition was not rewritten"
    assert destination_state(settings) == loaded, "destinations unchanged by a repeated message"

    def latest() -> dict:
        found = ledger_read.latest_by_function(ledger_read.read_runs(bucket, SERVICE, DAY, DAY).get(DAY, []))
        outcomes = {r.function: r.outcome for r in found}
        return outcomes if outcomes.get("ingest") == ledger_record.SKIPPED and len(outcomes) == 3 else None

    outcomes = wait_for(latest, "the run ledger to hold each function's latest attempt", timeout=30)
    assert outcomes == {
        "ingest": ledger_record.SKIPPED,
        "load_bigquery": ledger_record.SUCCEEDED,
        "load_postgres": ledger_record.SUCCEEDED,
    }
