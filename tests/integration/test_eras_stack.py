"""One month of every era of every service through the running stack: ingest, lake, BigQuery, Postgres.

Each era of shared/core/eras.py (16 of TLC's parquet, 4 of DataTalksClub's mirror) gets one
small month file, era-faithful (local/tlc_eras.py: its header, order and values; rendered as CSV.gz,
the format the stack's TLC server speaks), in the stack's TLC folder; one date of it is published
and must reach the lake, BigQuery and Postgres with every row. Yellow 2009-2010 must keep its
coordinates with null location ids; fhvhv from the mirror must have null fares.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest

from local.tlc_eras import era_table, file_bytes
from shared.core import clients
from shared.core.eras import ERAS, MIRROR, Era
from shared.core.pg import connection
from shared.core.settings import Settings
from tests.integration import stack_http
from tests.integration.months import forget, stack_tlc_dir

ROWS = 40
DAY = 11


def _probe(era: Era) -> tuple[int, int]:
    """A month of the era no other integration test serves: the mirror's 2020-11, else the era's second month."""
    if era.source == MIRROR:
        return (2020, 11)
    year, month = era.first
    return (year + 1, 1) if month == 12 else (year, month + 1)


@pytest.mark.parametrize("era", ERAS, ids=lambda e: f"{e.service}-{e.source}-{e.first[0]}-{e.first[1]:02d}")
def test_one_month_of_each_era_loads_everywhere(era, stack, urls, settings_env):
    settings_env()
    settings = Settings.from_env(function="status")
    year, month = _probe(era)
    day = dt.date(year, month, DAY)
    name = f"{era.service}_tripdata_{year}-{month:02d}.csv.gz"
    folder = stack_tlc_dir() / era.service
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(file_bytes(era, era_table(era, year, month, ROWS, day=DAY), "csv.gz"))
    forget(
        clients.storage().bucket(settings.lake_bucket),
        f"raw/{era.service}/{name}",
        f"staging/{era.service}/month={year}-{month:02d}/",
    )
    topic = os.environ.get("INGEST_TOPIC", "taxi-ingest")
    body = {"date": day.isoformat(), "service": era.service, "force": True}
    clients.publisher().publish(clients.topic_path(topic), json.dumps(body).encode()).result(timeout=30)
    days = stack_http.wait_for(
        urls,
        era.service,
        [day.isoformat()],
        lambda found: found[day.isoformat()]["state"] == "complete" and found[day.isoformat()]["lake_rows"] == ROWS,
        f"{era.service} {day} complete with {ROWS} rows",
    )
    assert days[day.isoformat()]["lake_rows"] == ROWS
    with connection(settings) as conn:
        cursor = conn.cursor()
        table = f"{settings.pg_schema}.{era.service}_trips"
        if era.service == "yellow":
            cursor.execute(
                f"SELECT count(pickup_longitude), count(pu_location_id), min(vendor_id), max(vendor_id) "
                f"FROM {table} WHERE pickup_date = %s",
                (day,),
            )
            coordinates, locations, low, high = cursor.fetchone()
            legacy = era.first[0] <= 2010
            assert (coordinates > 0, locations) == (legacy, 0 if legacy else ROWS)
            assert 1 <= low <= high <= 3
        if era.service == "fhvhv":
            cursor.execute(f"SELECT count(trip_miles), count(sr_flag) FROM {table} WHERE pickup_date = %s", (day,))
            miles, shared_ride = cursor.fetchone()
            assert (miles, shared_ride > 0) == ((0, True) if era.source == MIRROR else (ROWS, False))


@pytest.mark.parametrize(
    ("service", "date"), [("yellow", "2009-01-15"), ("fhvhv", "2024-01-15"), ("fhv", "2021-08-02")]
)
def test_a_month_the_mirror_never_held_is_dead_lettered_at_the_message_without_a_download(
    service, date, fresh_bucket, dead_letters, settings_env
):
    """The default source (DataTalksClub's mirror) holds 2019-01..2021-07: any other month is refused
    before the ledger's `running` record and before any download (no raw/ object), with the field,
    the value and TLC's parquet template that would serve it; the date's ledger says why."""
    from functions import ingest as ingest_function
    from shared.core import ledger_read, ledger_record
    from shared.core.coverage import TLC_PARQUET_TEMPLATE
    from shared.core.eras import MIRROR_TEMPLATE
    from tests.gcs_events import message_published_event

    settings_env(SOURCE_URL_TEMPLATE=MIRROR_TEMPLATE)
    ingest_function.handle(message_published_event({"date": date, "service": service}))
    (letter,) = dead_letters(expected=1)
    assert (letter["reason"], letter["error"]["field"], letter["error"]["value"]) == ("unsupported_month", "date", date)
    assert letter["error"]["serves"] == TLC_PARQUET_TEMPLATE
    assert list(fresh_bucket.list_blobs(prefix=f"raw/{service}/")) == []
    day = dt.date.fromisoformat(date)
    records = ledger_read.read_runs(fresh_bucket, service, day, day).get(day, [])
    assert [(r.outcome, r.reason) for r in records] == [(ledger_record.DEAD_LETTERED, "unsupported_month")]
