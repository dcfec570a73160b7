"""The month contenders: one TLC month file into daily parquet partitions, five ways.

- gunzip:     decompress only; the floor no parser can go below.
- tutorial:   the tutorial's pandas: read_csv with dtypes and parse_dates, passenger_count > 0,
              to_parquet partitioned by pickup date.
- duckdb:     COPY (SELECT ... WHERE passenger_count > 0) TO dir (FORMAT parquet, PARTITION_BY
              pickup_date): what a user would pick instead of a pipeline.
- split:      this project's whole-month split (shared.ingest.lake.split_month, the code ingest runs
              on a month's first date), every day's trips and rejects written to disk.
- ingest_31:  this project's ingest function called for each of the month's dates, as a
              backfill feeds one warm instance: real CloudEvents, a real download from a local
              TLC host, raw copy, staging and partitions in fake-gcs-server.
All parquet is zstd, the project's choice, so the baselines write the same format.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
from pathlib import Path
from typing import Any

from bench.measure import Clock

# The tutorial's dtypes for the yellow CSV (nullable integers: the month's tail has empty cells).
TUTORIAL_DTYPES = {
    "VendorID": "Int64",
    "passenger_count": "Int64",
    "trip_distance": float,
    "RatecodeID": "Int64",
    "store_and_fwd_flag": str,
    "PULocationID": "Int64",
    "DOLocationID": "Int64",
    "payment_type": "Int64",
    "fare_amount": float,
    "extra": float,
    "mta_tax": float,
    "tip_amount": float,
    "tolls_amount": float,
    "improvement_surcharge": float,
    "total_amount": float,
    "congestion_surcharge": float,
}


def gunzip(spec: dict[str, Any], clock: Clock) -> dict[str, Any]:
    """The floor: the bytes decompressed and nothing else (a parquet month: its pages decoded)."""
    size = 0
    if spec["fmt"] == "parquet":
        with clock:
            import pyarrow.parquet as pq

            from shared.ingest.month_file import PARQUET_BATCH, PARQUET_BUFFER

            month = pq.ParquetFile(spec["source"], buffer_size=PARQUET_BUFFER, pre_buffer=False)
            for batch in month.iter_batches(batch_size=PARQUET_BATCH, use_threads=False):  # as the split reads
                size += batch.nbytes
        return {"bytes_out": size}
    with clock, gzip.open(spec["source"], "rb") as handle:
        while chunk := handle.read(1 << 20):
            size += len(chunk)
    return {"bytes_out": size}


def tutorial(spec: dict[str, Any], clock: Clock) -> dict[str, Any]:
    with clock:
        import pandas as pd

        frame = pd.read_csv(
            spec["source"], dtype=TUTORIAL_DTYPES, parse_dates=["tpep_pickup_datetime", "tpep_dropoff_datetime"]
        )
        frame = frame[frame["passenger_count"] > 0]
        frame["pickup_date"] = frame["tpep_pickup_datetime"].dt.date
        frame.to_parquet(spec["out"], partition_cols=["pickup_date"], compression="zstd")
    return {"rows_out": len(frame)}


def duckdb(spec: dict[str, Any], clock: Clock) -> dict[str, Any]:
    with clock:
        import duckdb as ddb

        con = ddb.connect()
        source = str(spec["source"]).replace("'", "''")
        out = str(spec["out"]).replace("'", "''")
        counted = con.execute(f"""
            COPY (SELECT *, CAST(tpep_pickup_datetime AS DATE) AS pickup_date
                  FROM read_csv('{source}', header = true)
                  WHERE passenger_count > 0)
            TO '{out}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (pickup_date))""").fetchone()
    if counted is None:
        raise RuntimeError("duckdb's COPY returned no row count")
    return {"rows_out": int(counted[0])}


def split(spec: dict[str, Any], clock: Clock) -> dict[str, Any]:
    with clock:
        from shared.ingest.cleaning import Rules
        from shared.ingest.lake import split_month
        from shared.ingest.split_output import DirectoryOutput

        with open(spec["source"], "rb") as handle:  # files {day}.trips.parquet, streamed as written
            month = split_month(
                handle,
                spec["fmt"],
                spec["service"],
                spec["year"],
                spec["month"],
                Rules(),
                DirectoryOutput(Path(spec["out"])),
            )
    return {
        "rows_in": month.source_rows,
        "rows_out": sum(p.rows_written for p in month.days.values()),
        "rows_rejected": sum(p.rows_rejected for p in month.days.values()) + month.month_rejected_rows,
    }


def ingest_31(spec: dict[str, Any], clock: Clock) -> dict[str, Any]:
    """Every date of the month through the ingest entry point, in order, in one warm process."""
    import os

    os.environ["FUNCTION_TARGET"] = "ingest"  # as functions-framework sets it before it imports main.py
    with clock:  # what an instance imports: main.py, which imports the ingest module only
        import main
        from shared.core import clients
    from shared.ingest.lake import month_days
    from tests.gcs_events import message_published_event

    clients.storage().create_bucket(spec["env"]["LAKE_BUCKET"])
    per_date = []
    for day in (d.isoformat() for d in month_days(spec["year"], spec["month"])):
        event = message_published_event({"date": day, "service": spec["service"]})
        captured = io.StringIO()
        wall, cpu = clock.wall, clock.cpu
        with clock, contextlib.redirect_stdout(captured):
            main.ingest(event)  # the entry point Cloud Run calls
        outcome = _outcome(captured.getvalue(), day)
        per_date.append(
            {
                "date": day,
                "wall": clock.wall - wall,
                "cpu": clock.cpu - cpu,
                "rows_written": outcome["rows_written"],
                "rows_rejected": outcome["rows_rejected"],
            }
        )
    return {
        "rows_out": sum(d["rows_written"] for d in per_date),
        "rows_rejected": sum(d["rows_rejected"] for d in per_date),
        "per_date": per_date,
    }


def _outcome(log_text: str, day: str) -> dict[str, Any]:
    """The function's one outcome line; anything but a written partition fails the benchmark."""
    entries = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    outcome = entries[-1] if entries else {}
    if outcome.get("severity") not in ("INFO", "WARNING") or "rows_written" not in outcome:
        raise RuntimeError(f"ingest of {day} did not write a partition: {log_text[-2000:]}")
    return outcome


CONTENDERS = {"gunzip": gunzip, "tutorial": tutorial, "duckdb": duckdb, "split": split, "ingest_31": ingest_31}
