"""A full-size month (1,369,765 rows, the size of yellow January 2021) through the whole stack.

At TLC's real sizes the pipeline's main use, a backfill, once did not finish: 31 dates arrived
together and 30 failed on purpose while one instance split the month. This test is the
proof that it does now, through the real path only: one backfill message published with
gcloud, the backfill function's 31 ingest messages, ingest, the lake's finalize
notifications, both loaders, the status function. Every date's count in the lake, BigQuery
and Postgres must equal an independent count of the source file (pyarrow's CSV reader and
the tutorial's rule, not the project's cleaning code), every delivery must succeed the first
time (no function raised for a retry), and a second backfill must rewrite nothing.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest
from google.api_core.exceptions import NotFound

from local.tlc_data import generate_month
from local.tlc_files import write_month
from shared.core import clients, paths
from shared.core.settings import Settings
from tests.integration import stack_http
from tests.integration.stack_http import by_date, reloaded

SERVICE, YEAR, MONTH = "yellow", 2020, 1  # a month no other test uses
ROWS = 1_369_765
DATES = [dt.date(YEAR, MONTH, d).isoformat() for d in range(1, 32)]


def independent_counts(path: Path) -> dict[str, int]:
    """Rows per pickup date that any reasonable cleaning keeps: picked up in the month, with a
    passenger count above zero (the tutorial's rule; the project also rejects empty counts)."""
    table = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            include_columns=["tpep_pickup_datetime", "passenger_count"],
            column_types={"tpep_pickup_datetime": pa.string(), "passenger_count": pa.string()},
        ),
    )
    day = pc.utf8_slice_codeunits(table["tpep_pickup_datetime"], 0, 10)
    passengers = pc.cast(
        pc.if_else(pc.equal(table["passenger_count"], ""), None, table["passenger_count"]), pa.float64()
    )
    keep = pc.and_(pc.fill_null(pc.greater(passengers, 0), False), pc.starts_with(day, f"{YEAR:04d}-{MONTH:02d}-"))
    counts = pc.value_counts(pc.filter(day, keep))
    return {item["values"].as_py(): item["counts"].as_py() for item in counts}


def clear_month() -> None:
    """Earlier runs of this test on the same stack: start from nothing for this month."""
    bucket = clients.storage().bucket(os.environ["LAKE_BUCKET"])
    names = [
        paths.raw_object(SERVICE, f"x/{SERVICE}_tripdata_{YEAR}-{MONTH:02d}.csv.gz"),
        paths.staging_manifest(SERVICE, YEAR, MONTH),
    ]
    for date in DATES:
        day = dt.date.fromisoformat(date)
        names += [paths.trips_object(SERVICE, day), paths.rejects_object(SERVICE, day)]
    for name in names:
        blob = bucket.get_blob(name)
        if blob is not None:
            blob.delete()
    # BigQuery has no load ledger: its counts prove this run's loads only if the days start empty.
    settings = Settings.from_env()
    table = f"{settings.project}.{settings.bq_dataset}.{SERVICE}_trips"
    try:
        clients.bigquery().query(
            f"DELETE FROM `{table}` WHERE pickup_date BETWEEN DATE '{DATES[0]}' AND DATE '{DATES[-1]}'"
        ).result()
    except NotFound:
        pass  # a fresh stack: the first load creates the table


def month_log_lines(state_dir: Path, marker: str) -> list[str]:
    """The functions' log lines about this month that contain `marker`."""
    lines = []
    for log in (state_dir / "logs").glob("fn-*.log"):
        lines += [
            line
            for line in log.read_text(errors="replace").splitlines()
            if marker in line and f'"date":"{YEAR:04d}-{MONTH:02d}-' in line
        ]
    return lines


def retries_logged(state_dir: Path) -> list[str]:
    """Lines where a function raised for a redelivery about this month."""
    return month_log_lines(state_dir, "will be retried")


@pytest.fixture(scope="module")
def full_month(stack) -> dict[str, int]:
    """The month file, generated at full size into the stack's TLC server's directory."""
    state_dir = os.environ.get("TAXI_STATE_DIR")
    if not state_dir:
        stack_http.unavailable("TAXI_STATE_DIR is not set (the stack's env file exports it)")
    target = Path(state_dir) / "tlc" / SERVICE / f"{SERVICE}_tripdata_{YEAR}-{MONTH:02d}.csv.gz"
    partial = target.with_suffix(".tmp")
    write_month(partial, generate_month(SERVICE, YEAR, MONTH, rows=ROWS, seed=2020), "csv.gz")
    partial.replace(target)  # the server sees the whole file or none
    return independent_counts(target)


def test_a_full_size_month_backfill_completes_exactly_first_time_and_again_rewrites_nothing(
    stack, urls, gcloud, full_month
):
    backfill_topic = os.environ.get("BACKFILL_TOPIC", "taxi-backfill")
    state_dir = Path(os.environ["TAXI_STATE_DIR"])
    clients.reset()
    clear_month()
    retries_before = len(retries_logged(state_dir))
    before = {date: day["lake_generation"] for date, day in by_date(stack_http.status(urls, SERVICE, DATES)).items()}

    started = time.monotonic()
    gcloud(backfill_topic, {"start": DATES[0], "end": DATES[-1], "service": SERVICE})
    days = stack_http.wait_for(urls, SERVICE, DATES, lambda d: reloaded(d, before, DATES), "31 complete dates")
    seconds = time.monotonic() - started

    assert sum(full_month.values()) > 0.9 * ROWS
    for date in DATES:
        day = days[date]
        assert day["lake_rows"] == day["bigquery_rows"] == day["postgres_rows"] == full_month[date], (date, day)
    assert retries_logged(state_dir)[retries_before:] == [], "every delivery must succeed the first time"
    # ... and the log lines it searches are there to be found (the outcomes match the same pattern).
    assert len(month_log_lines(state_dir, '"message":"partition written"')) >= len(DATES)
    print(
        f"\nfull-size month: {ROWS:,} source rows, {sum(full_month.values()):,} loaded, "
        f"31 dates complete in {seconds:.0f} s"
    )

    generations = {date: day["lake_generation"] for date, day in days.items()}
    gcloud(backfill_topic, {"start": DATES[0], "end": DATES[-1], "service": SERVICE})
    bucket = clients.storage().bucket(os.environ["LAKE_BUCKET"])

    def all_skipped() -> bool:  # each date's run ledger records the second delivery's skip
        records = [
            blob
            for blob in clients.storage().list_blobs(bucket, prefix=f"runs/{SERVICE}/pickup_date={YEAR}")
            if "/ingest/" in blob.name and (blob.metadata or {}).get("outcome") == "skipped_up_to_date"
        ]
        return len({blob.name.split("pickup_date=", 1)[1][:10] for blob in records}) == len(DATES)

    deadline = time.monotonic() + 300
    while not all_skipped():
        assert time.monotonic() < deadline, "the second backfill's 31 ingest deliveries did not all skip"
        time.sleep(2)
    again = by_date(stack_http.status(urls, SERVICE, DATES))
    assert {date: day["lake_generation"] for date, day in again.items()} == generations, "nothing rewritten"
    assert all(day["state"] == "complete" for day in again.values())
