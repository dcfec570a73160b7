"""The pipeline heals itself: the scheduled repair backfill (`{"last_days": N, "repair": true}`,
infra/terraform/scheduler.tf) finds days whose partition is in the lake but not loaded everywhere
and reloads them, through the real path (backfill topic, backfill, ingest, finalize, loaders).

Before it, a loader outage longer than the subscription's retries, or a finalize notification
that never arrived, left the day `partial` for good, with no error anywhere (issue #12).
"""

from __future__ import annotations

import os

import requests

from shared import clients
from shared.settings import Settings
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
