"""End to end on the local stack: backfill, status and only_missing, through the real functions.

The issue's must-show, step by step, with nothing called in-process: messages
go through the Pub/Sub emulator's subscriptions and the stack's push relay to the
functions served by functions-framework, which write to fake-gcs-server, the BigQuery emulator and
Postgres; the status function reads them back.
1. A backfill of 2021-01-01..2021-01-07 published with `gcloud pubsub topics
   publish` fans out to exactly 7 ingest messages and leads to 7 complete dates
   (and to new trips objects that Postgres loaded: the work was really done).
2. Deleting one day from Postgres makes status report it `partial`.
3. An `only_missing` backfill publishes exactly one ingest message (seen on a
   pull subscription of the ingest topic made for this test), and status
   returns to all `complete`.
With TAXI_STACK=1 (set by `./local_emulator.sh test`) an unreachable function
or a missing gcloud fails the test; without it the test is skipped.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from shared.core import clients, paths
from tests.integration import stack_http
from tests.integration.stack_http import by_date, reloaded

SERVICE = "yellow"
START, END = dt.date(2021, 1, 1), dt.date(2021, 1, 7)
DATES = [(START + dt.timedelta(days=i)).isoformat() for i in range((END - START).days + 1)]
DROPPED = "2021-01-04"


@pytest.fixture
def ingest_tap(stack):
    """A pull subscription on the ingest topic: what the backfill really published, from now on."""
    from google.api_core.exceptions import DeadlineExceeded
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    project = os.environ["GCP_PROJECT"]
    topic = f"projects/{project}/topics/{os.environ.get('INGEST_TOPIC', 'taxi-ingest')}"
    name = f"projects/{project}/subscriptions/e2e-ingest-{uuid.uuid4().hex[:10]}"
    subscriber.create_subscription(name=name, topic=topic)

    def drain(quiet_seconds: float = 5.0) -> list[dict[str, Any]]:
        """Everything received so far, pulling until nothing arrives for `quiet_seconds`."""
        bodies: list[dict[str, Any]] = []
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < quiet_seconds:
            try:
                response = subscriber.pull(subscription=name, max_messages=100, timeout=5)
            except DeadlineExceeded:
                continue
            if response.received_messages:
                subscriber.acknowledge(subscription=name, ack_ids=[m.ack_id for m in response.received_messages])
                bodies += [json.loads(m.message.data) for m in response.received_messages]
                quiet_since = time.monotonic()
            else:
                time.sleep(0.5)
        return bodies

    yield drain
    subscriber.delete_subscription(subscription=name)
    subscriber.close()


def status(urls: dict[str, str], fmt: str = "json") -> Any:
    return stack_http.status(urls, SERVICE, DATES, fmt)


def wait_for(urls: dict[str, str], done: Callable[[dict[str, dict]], bool], what: str) -> dict[str, dict]:
    return stack_http.wait_for(urls, SERVICE, DATES, done, what)


def clear_lake_range() -> None:
    """Remove the range's partitions (not the raw or staging caches) so the backfill has work to do."""
    bucket = clients.storage().bucket(os.environ["LAKE_BUCKET"])
    for date in DATES:
        day = dt.date.fromisoformat(date)
        for name in (
            paths.trips_object(SERVICE, day),
            paths.rejects_object(SERVICE, day),
            paths.quarantine_object(SERVICE, day),
        ):
            blob = bucket.get_blob(name)
            if blob is not None:
                blob.delete()


def delete_day_from_postgres(date: str) -> int:
    import pg8000.dbapi

    schema = os.environ.get("PG_SCHEMA", "ny_taxi")
    connection = pg8000.dbapi.connect(
        user=os.environ.get("PG_USER", "postgres"),
        password=os.environ.get("PG_PASSWORD") or None,
        host=os.environ["PG_HOST"],
        port=int(os.environ["PG_PORT"]),
        database=os.environ.get("PG_DATABASE", "ny_taxi"),
    )
    try:
        cursor = connection.cursor()
        cursor.execute(
            f'DELETE FROM "{schema}"."{SERVICE}_trips" WHERE pickup_date = %s', (dt.date.fromisoformat(date),)
        )
        deleted = cursor.rowcount
        connection.commit()
    finally:
        connection.close()
    return deleted


def test_backfill_to_complete_partial_after_a_postgres_delete_and_only_missing_repairs(urls, gcloud, ingest_tap):
    backfill_topic = os.environ.get("BACKFILL_TOPIC", "taxi-backfill")
    clients.reset()
    clear_lake_range()
    before = {date: day["lake_generation"] for date, day in by_date(status(urls)).items()}
    assert all(generation is None for generation in before.values())

    # 1. The backfill as a person would send it: 7 ingest messages, 7 complete dates.
    gcloud(backfill_topic, {"start": DATES[0], "end": DATES[-1], "service": SERVICE})
    days = wait_for(urls, lambda d: reloaded(d, before, DATES), "7 complete dates")
    assert [days[date]["state"] for date in DATES] == ["complete"] * 7
    assert all(days[date]["lake_rows"] > 0 for date in DATES), "the fake TLC month has trips on every day"
    published = ingest_tap()
    assert sorted(m["date"] for m in published if m.get("service") == SERVICE) == DATES
    assert len(published) == 7 and not any(m.get("force") for m in published)

    # 2. A day deleted from Postgres is reported partial; the others stay complete.
    assert delete_day_from_postgres(DROPPED) == days[DROPPED]["lake_rows"]
    after_delete = by_date(status(urls))
    assert after_delete[DROPPED]["state"] == "partial"
    assert after_delete[DROPPED]["postgres_rows"] == 0
    assert after_delete[DROPPED]["bigquery_rows"] == after_delete[DROPPED]["lake_rows"] > 0
    assert all(after_delete[date]["state"] == "complete" for date in DATES if date != DROPPED)

    # 3. only_missing: the plan (HTTP, dry run) is that one date, forced so the loaders are woken ...
    request = {"start": DATES[0], "end": DATES[-1], "service": SERVICE, "only_missing": True}
    plan = requests.post(urls["backfill_http"], json={**request, "dry_run": True}, timeout=120)
    assert plan.status_code == 200, plan.text
    assert plan.json()["messages"] == [{"date": DROPPED, "service": SERVICE, "force": True}]
    assert plan.json()["published"] == 0 and plan.json()["skipped_complete"] == 6
    # ... and published with gcloud it sends exactly one ingest message and repairs the date.
    generations = {date: day["lake_generation"] for date, day in after_delete.items()}
    gcloud(backfill_topic, request)
    repaired = wait_for(urls, lambda d: reloaded(d, generations, [DROPPED]), "repaired")
    assert all(day["state"] == "complete" for day in repaired.values())
    assert ingest_tap() == [{"date": DROPPED, "service": SERVICE, "force": True}]
    assert all(repaired[date]["lake_generation"] == generations[date] for date in DATES if date != DROPPED)

    # 4. The page and the table a person reads say the same.
    page = status(urls, "html")
    assert page.count('data-state="complete"') == 7 + 1  # seven cells and the legend key
    table = status(urls, "text")
    assert table.splitlines()[0] == f"{SERVICE} {DATES[0]}..{DATES[-1]}: complete 7"
    Path(__file__).resolve().parents[2].joinpath("test-artifacts").mkdir(exist_ok=True)
    Path(__file__).resolve().parents[2].joinpath("test-artifacts", "status-e2e.html").write_text(page)
