"""The options of the warehouse contenders (pg_big, pg_migrate, bq_big) for `python -m bench`, kept
out of bench/run.py: their sizes, what each round's spec carries for them, and the BigQuery emulator
they may need."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

BIG_ROWS = 50_000_000  # pg_big: rows already in the table (about 3 years of full-size yellow days)
MIGRATE_ROWS = 5_000_000  # pg_migrate: rows of the unpartitioned table it moves
BQ_DAYS = 90  # bq_big: other days already in the BigQuery table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--big-rows",
        type=int,
        help=f"pg_big: rows the table holds before the day is loaded (default {BIG_ROWS:,}; --quick: 1/100 of it)",
    )
    parser.add_argument(
        "--migrate-rows",
        type=int,
        help=f"pg_migrate: rows of the unpartitioned table it moves (default {MIGRATE_ROWS:,}; --quick: 1/100)",
    )
    parser.add_argument(
        "--bq-days",
        type=int,
        help=f"bq_big: days in the BigQuery table before the day is loaded (default {BQ_DAYS}; --quick: 10)",
    )


def resolve(args: argparse.Namespace) -> None:
    args.big_rows = args.big_rows or (BIG_ROWS // 100 if args.quick else BIG_ROWS)
    args.migrate_rows = args.migrate_rows or (MIGRATE_ROWS // 100 if args.quick else MIGRATE_ROWS)
    args.bq_days = args.bq_days or (10 if args.quick else BQ_DAYS)


def spec(args: argparse.Namespace, index: int) -> dict[str, object]:
    """What a round's Postgres/BigQuery spec carries for these contenders."""
    return {
        "big_rows": args.big_rows,
        "migrate_rows": args.migrate_rows,
        "bq_days": args.bq_days,
        "empty_dataset": f"bench_bq_empty_{index}",
    }


def bigquery(args: argparse.Namespace, gcs_root: Path) -> contextlib.AbstractContextManager[str | None]:
    """The BigQuery emulator and the stack's bridge, only when bq_big runs (bench/servers_warehouse.py)."""
    if "bq_big" not in args.only:
        return contextlib.nullcontext(None)
    from bench import servers_warehouse

    return servers_warehouse.bigquery(gcs_root, "bench")


def day_republisher(spec: dict[str, Any]) -> Callable[[], Any]:
    """A function that writes the round's day partition to the lake again, as a new generation
    with the same bytes and metadata, and returns its finalize notification: what a loader
    receives when the day is re-ingested. The warehouse contenders time loads of such events."""
    from shared.core import clients, paths
    from shared.ingest.lake_write import upload_bytes
    from tests.gcs_events import pubsub_notification_event

    name = paths.trips_object(spec["service"], dt.date.fromisoformat(spec["day"]))
    bucket = clients.storage().bucket(spec["bucket"])
    blob = bucket.get_blob(name)
    data = blob.download_as_bytes()

    def new_version() -> Any:
        fresh = upload_bytes(bucket, name, data, blob.metadata)
        return pubsub_notification_event(spec["bucket"], name, fresh.generation)

    return new_version
