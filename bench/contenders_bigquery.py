"""BigQuery at the size users hold, on the path the local stack can measure: the emulator behind the bridge.

- bq_big: this project's load_bigquery entry point (one load job into the day's partition
          decorator, carried out by local/stack/bq_bridge.py on the emulator) for the same day,
          into an empty table (`empty_wall`) and into a table that already holds `bq_days` other
          days at full size (`wall`), each from a fresh client, in one process.

The big table is filled once per run with one plain WRITE_APPEND load job of the day's rows
copied to every other date (pickup_date and timestamps moved by whole days), untimed. What this
measures is the emulator's cost, not Google's: every write makes the emulator copy the whole table
(README, Performance), so its day load grows with the table, where Google's partition swap does
not touch the rest of the table. The figure says how far the local stack is from that.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from bench.contenders_postgres import _load
from bench.measure import Clock
from bench.warehouse import day_republisher

BIG_DATASET = "bench_bq_big"


def shifted_days(table: Any, day: dt.date, days: int) -> Any:
    """The day's rows copied to the `days` dates before it (pickup_date and timestamps moved)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    copies = []
    for back in range(1, days + 1):
        moved = table
        for index, field in enumerate(table.schema):
            if field.name == "pickup_date":
                moved = moved.set_column(index, field, pa.array([day - dt.timedelta(days=back)] * table.num_rows))
            elif pa.types.is_timestamp(field.type):
                shift = pa.scalar(dt.timedelta(days=back), pa.duration("us"))
                moved = moved.set_column(index, field, pc.subtract(table.column(index), shift))
        copies.append(moved.cast(table.schema))
    return pa.concat_tables(copies)


def _rows(client: Any, table: str) -> int:
    try:
        return int(client.get_table(table).num_rows or 0)
    except Exception as exc:  # noqa: BLE001 - not there yet
        if "not found" in str(exc).lower():
            return 0
        raise


def bq_big(spec: dict[str, Any], clock: Clock) -> dict[str, Any]:
    import pyarrow.parquet as pq
    from google.cloud import bigquery as bq

    from functions import load_bigquery  # first: `shared` picks Arrow's allocator before pyarrow loads
    from shared.core import clients
    from shared.core.settings import LOAD_BIGQUERY, get_settings
    from shared.load.bigquery import ensure_table, table_id

    day, service = dt.date.fromisoformat(spec["day"]), spec["service"]
    new_version = day_republisher(spec)
    bucket = clients.storage().bucket(spec["bucket"])  # the fill file goes beside the day

    def use(dataset: str) -> Any:
        os.environ["BQ_DATASET"] = dataset
        clients.reset()
        client = clients.bigquery()
        client.create_dataset(dataset, exists_ok=True)  # Terraform's, in Google Cloud
        return client

    empty = Clock()
    client = use(spec["empty_dataset"])
    ensure_table(client, get_settings(LOAD_BIGQUERY), service)  # made beforehand, as the big one is
    event = new_version()
    clients.reset()
    with empty:
        _load(load_bigquery.handle, event)

    client = use(BIG_DATASET)
    settings = get_settings(LOAD_BIGQUERY)
    table = table_id(settings, service)
    filled: dict[str, Any] = {}
    if _rows(client, table) < spec["bq_days"] * blob_rows(spec):
        ensure_table(client, settings, service)
        fill = shifted_days(pq.read_table(spec["parquet"]), day, spec["bq_days"])
        path = os.path.join(os.path.dirname(spec["parquet"]), "bq_fill.parquet")
        pq.write_table(fill, path, compression="zstd")
        fill_blob = bucket.blob("bench/bq_fill.parquet")
        fill_blob.upload_from_filename(path, timeout=600)
        config = bq.LoadJobConfig(source_format=bq.SourceFormat.PARQUET, write_disposition="WRITE_APPEND")
        client.load_table_from_uri(f"gs://{spec['bucket']}/{fill_blob.name}", table, job_config=config).result()
        fill_blob.delete()
        os.unlink(path)
        filled = {"fill_rows": fill.num_rows}
    table_rows = _rows(client, table)
    event = new_version()
    clients.reset()
    with clock:
        _load(load_bigquery.handle, event)
    client = clients.bigquery()
    result = list(client.query(f"SELECT COUNT(*) AS n FROM `{table}` WHERE pickup_date = '{day}'").result())
    return {
        "rows_out": int(result[0]["n"]),
        "empty_wall": empty.wall,
        "table_rows": table_rows,
        "partitions": spec["bq_days"] + 1,
        "peak_mb": None,  # the emulator does the work, not this process
        **filled,
    }


def blob_rows(spec: dict[str, Any]) -> int:
    import pyarrow.parquet as pq

    return int(pq.read_metadata(spec["parquet"]).num_rows)


CONTENDERS = {"bq_big": bq_big}
