"""The Postgres contenders: one day's partition into a table, from a cold connection to committed rows.

- pg_ours:    this project's load_postgres entry point, given the object's finalize event:
              generation check, download, parquet decode and checks, advisory lock, ledger,
              DELETE of the day, COPY, commit. Timed into an empty day (as the others) and,
              for information, replacing a day that holds the previous version.
- pg_copy:    `psql \\copy` of the same rows as CSV into an identical table (same month partition,
              same index; made beforehand, untimed): the fastest way in, the floor for this step.
- pg_to_sql:  pandas `to_sql` through SQLAlchemy and psycopg2, as the tutorial loads Postgres
              (its own table, no index). With `to_sql_rows` set below the day's rows, a sample
              is loaded and the report extrapolates linearly.
Every contender works in its own schema (the parent names one per run), so runs never see
each other's rows. Imports are outside the clock here: a loader instance is warm.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
from typing import Any

from bench.measure import Clock


def _connect(spec: dict[str, Any]) -> Any:
    import pg8000.dbapi

    env = spec["env"]
    return pg8000.dbapi.connect(
        user=env["PG_USER"],
        password=env["PG_PASSWORD"],
        host=env["PG_HOST"],
        port=int(env["PG_PORT"]),
        database=env["PG_DATABASE"],
    )


def _count(spec: dict[str, Any], table: str) -> int:
    conn = _connect(spec)
    try:
        cursor = conn.cursor()
        cursor.execute(f"SELECT count(*) FROM {table}")
        return int(cursor.fetchone()[0])
    finally:
        conn.close()


def _load(handle: Any, event: Any) -> dict[str, Any]:
    """Call the loader; its one outcome line must say the day was replaced."""
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        handle(event)
    entries = [json.loads(line) for line in captured.getvalue().splitlines() if line.startswith("{")]
    if not entries or entries[-1].get("severity") != "INFO" or "replaced" not in entries[-1].get("message", ""):
        raise RuntimeError(f"the load did not replace the day: {captured.getvalue()[-2000:]}")
    return entries[-1]


def pg_ours(spec: dict[str, Any], clock: Clock) -> dict[str, Any]:
    import datetime as dt

    from functions import load_postgres  # first: `shared` picks Arrow's allocator before pyarrow loads
    from shared.core import clients, paths, pg
    from shared.ingest.lake_write import upload_bytes
    from shared.load.postgres import table_ref
    from tests.gcs_events import pubsub_notification_event

    name = paths.trips_object(spec["service"], dt.date.fromisoformat(spec["day"]))
    bucket = clients.storage().bucket(spec["bucket"])
    blob = bucket.get_blob(name)
    data = blob.download_as_bytes()

    def new_version() -> Any:  # a new generation of the same bytes: the day must be loaded again
        fresh = upload_bytes(bucket, name, data, blob.metadata)
        return pubsub_notification_event(spec["bucket"], name, fresh.generation)

    _load(load_postgres.handle, new_version())  # creates the schema, table and ledger (migrations)
    schema, table = spec["env"]["PG_SCHEMA"], table_ref(spec["env"]["PG_SCHEMA"], spec["service"])
    conn = _connect(spec)
    cursor = conn.cursor()
    cursor.execute(f'TRUNCATE {table}; DELETE FROM "{schema}".loads')
    conn.commit()
    conn.close()
    event = new_version()
    pg.reset()  # cold: the connection is made inside the clock, as psql makes its own
    with clock:
        outcome = _load(load_postgres.handle, event)
    event = new_version()
    pg.reset()
    replace = Clock()
    with replace:
        _load(load_postgres.handle, event)
    steps = {
        k: outcome[k] for k in ("read_seconds", "decode_seconds", "copy_seconds", "commit_seconds") if k in outcome
    }
    return {"rows_out": _count(spec, table), "replace_wall": replace.wall, "steps": steps}


def pg_copy(spec: dict[str, Any], clock: Clock) -> dict[str, Any]:
    import datetime as dt

    from shared.core.schemas import columns
    from shared.load.postgres_ddl import create_partition_sql, create_table_sql, partition_ref, table_ref

    schema, service = spec["env"]["PG_SCHEMA"], spec["service"]
    month = dt.date(spec["year"], spec["month"], 1)  # the loader's layout: the month's partition, made beforehand
    conn = _connect(spec)
    cursor = conn.cursor()
    cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    for statement in create_table_sql(schema, service) + create_partition_sql(schema, service, month):
        cursor.execute(statement)
    conn.commit()
    conn.close()
    env = spec["env"]
    names = ", ".join(c.name for c in columns(service))
    command = [
        shutil.which("psql") or "psql",
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        env["PG_HOST"],
        "-p",
        env["PG_PORT"],
        "-U",
        env["PG_USER"],
        "-d",
        env["PG_DATABASE"],
        "-c",
        f"\\copy {partition_ref(schema, service, month)} ({names}) FROM '{spec['csv']}' WITH (FORMAT csv)",
    ]
    with clock:
        subprocess.run(command, env={**os.environ, "PGPASSWORD": env["PG_PASSWORD"]}, check=True)
    # This process only waits for psql: its high-water mark would not be psql's.
    return {"rows_out": _count(spec, table_ref(schema, service)), "peak_mb": None}


def pg_to_sql(spec: dict[str, Any], clock: Clock) -> dict[str, Any]:
    import pandas as pd
    import sqlalchemy

    env = spec["env"]
    frame = pd.read_parquet(spec["parquet"])
    full_rows = len(frame)
    if spec.get("to_sql_rows") and spec["to_sql_rows"] < full_rows:
        frame = frame.head(spec["to_sql_rows"])
    url = sqlalchemy.URL.create(
        "postgresql+psycopg2",
        username=env["PG_USER"],
        password=env["PG_PASSWORD"],
        host=env["PG_HOST"],
        port=int(env["PG_PORT"]),
        database=env["PG_DATABASE"],
    )
    schema = env["PG_SCHEMA"]
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    frame.head(0).to_sql("trips", engine, schema=schema, if_exists="replace", index=False)  # as the tutorial
    engine.dispose()  # cold: the timed part connects, as the others do
    with clock:
        frame.to_sql("trips", engine, schema=schema, if_exists="append", index=False, chunksize=100_000)
    engine.dispose()
    return {"rows_out": _count(spec, f'"{schema}".trips'), "extrapolate_to": full_rows}


CONTENDERS = {"pg_ours": pg_ours, "pg_copy": pg_copy, "pg_to_sql": pg_to_sql}
