"""The pipeline heals itself: the scheduled repair backfill (`{"last_days": N, "repair": true}`,
infra/terraform/scheduler.tf) finds days whose partition is in the lake but not loaded everywhere
and reloads them, through the real path (backfill topic, backfill, ingest, finalize, loaders).

Before it, a loader outage longer than the subscription's retries, or a finalize notification
that never arrived, left the day `partial` for good, with no error anywhere (issue #12).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import requests

from shared.core import clients, ledger_read, ledger_record, paths
from shared.core.settings import Settings
from shared.ingest import reannounce
from tests.integration import stack_http
from tests.integration.stack_http import by_date, reloaded
from tests.integration.test_backfill_e2e import delete_day_from_postgres

SERVICE = "yellow"
DATES = ["2021-02-19", "2021-02-20", "2021-02-21", "2021-02-22"]  # no other test uses these
LOADED = DATES[1:3]


def delete_day_from_bigquery(date: str) -> None:
    settings = Settings.from_env()
    table = f"{settings.project}.{settings.bq_dataset}.{SERVICE}_trips"
    clients.bigquery().query(f"DELETE FROM `{table}` WHERE pickup_date = DATE '{date}'").result()


def test_repair_reloads_only_the_days_a_destination_lost(urls, gcloud):
    backfill_topic = os.environ.get("BACKFILL_TOPIC", "taxi-backfill")
    clients.reset()
    before = {d: day["lake_generation"] for d, day in by_date(stack_http.status(urls, SERVICE, LOADED)).items()}
    gcloud(backfill_topic, {"start": LOADED[0], "end": LOADED[-1], "service": SERVICE, "force": True})
    loaded = stack_http.wait_for(urls, SERVICE, LOADED, lambda d: reloaded(d, before, LOADED), "loaded")

    # One day loses its Postgres rows (say an outage outlived the retries), the other its BigQuery rows.
    assert delete_day_from_postgres(LOADED[0]) > 0
    delete_day_from_bigquery(LOADED[1])
    damaged = by_date(stack_http.status(urls, SERVICE, DATES))
    assert damaged[LOADED[0]]["state"] == damaged[LOADED[1]]["state"] == "partial"
    untouched = {d: damaged[d]["state"] for d in DATES if d not in LOADED}

    request = {"start": DATES[0], "end": DATES[-1], "service": SERVICE, "repair": True}
    plan = requests.post(urls["backfill_http"], json={**request, "dry_run": True}, timeout=120)
    assert plan.status_code == 200, plan.text
    assert plan.json()["messages"] == [{"date": d, "service": SERVICE, "force": True} for d in LOADED]

    gcloud(backfill_topic, request)
    generations = {d: loaded[d]["lake_generation"] for d in LOADED}
    healed = stack_http.wait_for(urls, SERVICE, LOADED, lambda d: reloaded(d, generations, LOADED), "repaired")
    assert all(healed[d]["lake_rows"] == healed[d]["bigquery_rows"] == healed[d]["postgres_rows"] > 0 for d in LOADED)
    after = by_date(stack_http.status(urls, SERVICE, DATES))
    assert {d: after[d]["state"] for d in untouched} == untouched, "repair leaves other days alone"


# --- a plain republish repairs a lost finalize event (shared/ingest/reannounce.py) ---------------------------

LOST_DAY = "2021-02-24"  # no other test uses it
POSTGRES_SUBSCRIPTION = "taxi-lake-postgres-push"  # local/stack/resources.py: load_postgres's
INGEST_LOG = Path(__file__).resolve().parents[2] / ".state" / "logs" / "fn-ingest.log"


def publish_ingest(body: dict) -> str:
    """The message a person or the scheduler publishes; returns its message id."""
    topic = clients.topic_path(os.environ.get("INGEST_TOPIC", "taxi-ingest"))
    return clients.publisher().publish(topic, json.dumps(body).encode()).result(timeout=30)


def ingest_record(bucket, message_id: str) -> dict:
    """Ingest's finished run record of that message (the function's own account of it)."""

    def finished():
        day = dt.date.fromisoformat(LOST_DAY)
        found = [
            r
            for r in ledger_read.read_date(bucket, SERVICE, day)
            if r.get("function") == "ingest" and r.get("message_id") == message_id
        ]
        return found[0] if found and found[0]["outcome"] != ledger_record.RUNNING else None

    deadline = time.monotonic() + 120
    while (record := finished()) is None:
        assert time.monotonic() < deadline, f"no finished ingest record of message {message_id}"
        time.sleep(1)
    return record


def ingest_outcomes(what: str) -> list[dict]:
    """The ingest function's outcome log lines of LOST_DAY whose message contains `what`."""
    lines = INGEST_LOG.read_text().splitlines() if INGEST_LOG.exists() else []
    found = [json.loads(line) for line in lines if f'"date":"{LOST_DAY}"' in line and what in line]
    return [entry for entry in found if what in entry.get("message", "")]


def test_a_plain_republish_repairs_a_lost_finalize_event(urls):
    """The finalize event of a new generation never reaches load_postgres: its subscription does
    not exist when fake-gcs-server publishes it (as when a notification is never sent, or a loader
    outage outlives the retries). BigQuery loads the day, Postgres never hears of it: `partial`,
    no error anywhere. A plain republish (no force) then repairs it, once."""
    from google.cloud import pubsub_v1

    from local.stack import resources

    clients.reset()
    bucket = clients.storage().bucket(Settings.from_env().lake_bucket)
    name = paths.trips_object(SERVICE, dt.date.fromisoformat(LOST_DAY))
    first = by_date(stack_http.status(urls, SERVICE, [LOST_DAY]))[LOST_DAY]["lake_generation"]
    publish_ingest({"date": LOST_DAY, "service": SERVICE, "force": True})  # loaded everywhere, first
    before = stack_http.wait_for(
        urls, SERVICE, [LOST_DAY], lambda d: reloaded(d, {LOST_DAY: first}, [LOST_DAY]), "loaded"
    )[LOST_DAY]["lake_generation"]
    subscriber = pubsub_v1.SubscriberClient()
    subscriber.delete_subscription(
        subscription=subscriber.subscription_path(os.environ["GCP_PROJECT"], POSTGRES_SUBSCRIPTION)
    )
    try:
        delete_day_from_postgres(LOST_DAY)
        publish_ingest({"date": LOST_DAY, "service": SERVICE, "force": True})  # a new generation, announced once
        lost = stack_http.wait_for(
            urls,
            SERVICE,
            [LOST_DAY],
            lambda d: (
                d[LOST_DAY]["lake_generation"] not in (None, before)
                and d[LOST_DAY]["bigquery_rows"] == d[LOST_DAY]["lake_rows"] > 0
            ),
            "loaded into BigQuery",
        )[LOST_DAY]
    finally:
        subscriber.close()
        resources.create_subscriptions()  # as `up` makes it: the relay reopens its stream
    generation = lost["lake_generation"]
    assert (lost["state"], lost["postgres_rows"]) == ("partial", 0), lost
    assert {r["function"] for r in lost["runs"]} >= {"ingest", "load_bigquery"}
    assert "load_postgres" not in {r["function"] for r in lost["runs"] if r["generation"] == generation}
    written = bucket.get_blob(name).time_created

    # Within the grace its event may still be on its way: a republish leaves it alone.
    if (dt.datetime.now(dt.UTC) - written).total_seconds() < reannounce.REANNOUNCE_GRACE_SECONDS - 20:
        early = ingest_record(bucket, publish_ingest({"date": LOST_DAY, "service": SERVICE}))
        assert (early["outcome"], early["reason"]) == (ledger_record.SKIPPED, "up_to_date")
        assert bucket.get_blob(name).generation == generation

    # Past the grace: the plain republish re-announces it, and a second one right behind it does not
    # (the re-announced generation is then pending, in flight or loaded: tests/unit/test_reannounce.py).
    wait = reannounce.REANNOUNCE_GRACE_SECONDS + 1 - (dt.datetime.now(dt.UTC) - written).total_seconds()
    time.sleep(max(0.0, wait))
    repair = ingest_record(bucket, publish_ingest({"date": LOST_DAY, "service": SERVICE}))
    assert (repair["outcome"], repair["reason"]) == (ledger_record.SKIPPED, reannounce.REANNOUNCED)
    second = ingest_record(bucket, publish_ingest({"date": LOST_DAY, "service": SERVICE}))
    assert (second["outcome"], second["reason"]) == (ledger_record.SKIPPED, "up_to_date")

    healed = stack_http.wait_for(
        urls, SERVICE, [LOST_DAY], lambda d: reloaded(d, {LOST_DAY: generation}, [LOST_DAY]), "repaired"
    )[LOST_DAY]
    assert healed["lake_rows"] == healed["bigquery_rows"] == healed["postgres_rows"] == lost["lake_rows"]
    current = bucket.get_blob(name)
    assert current.generation == healed["lake_generation"] == repair["generation"]
    assert current.metadata["reannounced_from_generation"] == str(generation), "re-announced once, from the lost one"
    [logged] = [e for e in ingest_outcomes("re-announced") if e.get("previous_generation") == generation]
    assert logged["loaders"] == {"load_bigquery": "loaded", "load_postgres": "not_loaded"}
    assert logged["severity"] == "WARNING" and logged["generation"] == current.generation

    # A complete day: a plain republish rewrites nothing and wakes no loader.
    settled = ingest_record(bucket, publish_ingest({"date": LOST_DAY, "service": SERVICE}))
    assert (settled["outcome"], settled["reason"]) == (ledger_record.SKIPPED, "up_to_date")
    time.sleep(3)  # a would-be finalize event gets time to arrive
    assert bucket.get_blob(name).generation == current.generation
    assert by_date(stack_http.status(urls, SERVICE, [LOST_DAY]))[LOST_DAY]["state"] == "complete"
    woken = [
        r
        for r in ledger_read.read_date(bucket, SERVICE, dt.date.fromisoformat(LOST_DAY))
        if r["function"] != "ingest" and r["started_at"] > settled["started_at"]
    ]
    assert woken == [], "no loader ran again"
    assert [e["reannounce"] for e in ingest_outcomes("already up to date")][-1] == "loaded"
