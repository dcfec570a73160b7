"""The warehouse at the size users hold: one day loaded into a table that already holds years.

- pg_big: this project's load_postgres entry point, as pg_ours, but into a table that already
          holds `big_rows` rows (default 50 M: about three years of a full-size yellow month,
          the date before and after the day included). Two timed loads, each from a cold
          connection: the day as a new date (`wall`), then a new generation of it replacing the
          loaded day (`replace_wall`). The report sets them against pg_ours of the same round
          (the same day into an empty table) and against `psql \\copy`.

How the table is filled, quickly and untimed: the day is loaded once through the loader (so the
loader's own migrations make the table), then `INSERT ... SELECT` copies that day's rows to every
other date of the range (timestamps shifted by whole days), a month of dates per transaction, in
date order (a day's rows together, as day-by-day loads leave them; interleaved days would make
every replace touch every page of its month),
then `VACUUM ANALYZE`: the state of a table that has been loaded for years and vacuumed by
autovacuum. The fill happens once per benchmark run, in a schema of its own that the next rounds
find filled (each round removes its day again, untimed, and vacuums). It never goes through
1,000 loads: that would measure the fill, not the thousandth day.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from bench.contenders_postgres import _connect, _load
from bench.measure import Clock
from bench.warehouse import day_republisher

BIG_SCHEMA = "bench_pg_big"


def _select_list(service: str, day: dt.date) -> str:
    """The day's columns with pickup_date set to the series' date `d` and timestamps moved with it."""
    from shared.core.schemas import columns
    from shared.load.postgres import ident

    out = []
    for column in columns(service):
        name = ident(column.name)
        if column.name == "pickup_date":
            out.append("d::date")
        elif column.kind == "timestamp":
            out.append(f"{name} + (d::date - DATE '{day.isoformat()}') * interval '1 day'")
        else:
            out.append(name)
    return ", ".join(out)


def fill_ranges(day: dt.date, days: int) -> list[tuple[dt.date, dt.date]]:
    """Month-aligned (first, last) date ranges covering `days` dates that end with the day's month,
    newest last; the day itself is inside the last range (the caller leaves it out)."""
    end = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
    start = end - dt.timedelta(days=days)  # one more than needed: the day itself is skipped
    ranges, first = [], start
    while first <= end:
        following = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        last = min(following - dt.timedelta(days=1), end)
        ranges.append((first, last))
        first = following
    return ranges


def fill(conn: Any, schema: str, service: str, day: dt.date, big_rows: int, partitioned: bool = True) -> dict[str, Any]:
    """Copy the loaded day's rows to other dates until the table holds `big_rows` rows."""
    from shared.load import postgres as pg_load

    table = pg_load.table_ref(schema, service)
    cursor = conn.cursor()
    cursor.execute(f"SELECT count(*) FROM {table} WHERE pickup_date = %s", (day,))
    day_rows = int(cursor.fetchone()[0])
    started = time.monotonic()
    names = ", ".join(pg_load.ident(c.name) for c in _columns(service))
    cursor.execute(f"CREATE TEMP TABLE bench_day AS SELECT * FROM {table} WHERE pickup_date = %s", (day,))
    for first, last in fill_ranges(day, -(-big_rows // day_rows)):
        prepare = getattr(pg_load, "prepare_month", None)  # a partitioned layout makes its month first
        if prepare is not None and partitioned:
            conn.commit()
            prepare(conn, schema, service, first)
        cursor.execute(
            f"INSERT INTO {table} ({names}) SELECT {_select_list(service, day)} FROM bench_day, "
            f"generate_series(DATE '{first}', DATE '{last}', interval '1 day') AS d WHERE d::date <> DATE '{day}' "
            "ORDER BY d"  # a day's rows together, as a loader's COPY of one day leaves them
        )
        conn.commit()
    inserted = time.monotonic() - started
    conn.autocommit = True
    cursor.execute(f"VACUUM ANALYZE {table}")
    conn.autocommit = False
    return {
        "fill_rows": _table_rows(conn, table),
        "fill_seconds": round(inserted, 1),
        "vacuum_seconds": round(time.monotonic() - started - inserted, 1),
    }


def _columns(service: str) -> list[Any]:
    from shared.core.schemas import columns

    return list(columns(service))


def _relations(conn: Any, table: str) -> list[int]:
    """The table and, if partitioned, its partitions (pg_class oids; a partitioned parent's
    reltuples is the sum of its partitions', so row counts take relkind 'r' only)."""
    cursor = conn.cursor()
    cursor.execute(
        "SELECT %s::regclass::oid UNION ALL SELECT inhrelid FROM pg_inherits WHERE inhparent = %s::regclass",
        (table, table),
    )
    return [int(row[0]) for row in cursor.fetchall()]


def _table_rows(conn: Any, table: str) -> int:
    cursor = conn.cursor()
    cursor.execute(
        "SELECT coalesce(sum(greatest(reltuples, 0)), 0)::bigint FROM pg_class WHERE oid = ANY(%s) AND relkind = 'r'",
        (_relations(conn, table),),
    )
    return int(cursor.fetchone()[0])


def pg_big(spec: dict[str, Any], clock: Clock) -> dict[str, Any]:
    import os

    from functions import load_postgres  # first: `shared` picks Arrow's allocator before pyarrow loads
    from shared.core import pg
    from shared.load.postgres import table_ref

    os.environ["PG_SCHEMA"] = BIG_SCHEMA  # one filled table for every round of the run
    spec = {**spec, "env": {**spec["env"], "PG_SCHEMA": BIG_SCHEMA}}
    day, service = dt.date.fromisoformat(spec["day"]), spec["service"]
    new_version = day_republisher(spec)

    table = table_ref(BIG_SCHEMA, service)
    conn = _connect(spec)
    cursor = conn.cursor()
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{BIG_SCHEMA}.{service}_trips",))
    exists = bool(cursor.fetchone()[0])
    conn.rollback()
    filled: dict[str, Any] = {}
    # Untimed, every round: the loader's migrations make the table, and this process decodes a
    # partition once before the clock, as pg_ours does (the first decode imports pandas: ~2 s).
    _load(load_postgres.handle, new_version())
    if not exists or _table_rows(conn, table) < spec["big_rows"] * 0.9:
        filled = fill(conn, BIG_SCHEMA, service, day, spec["big_rows"])
    # The day leaves the table again (untimed), as if it had never been loaded.
    cursor.execute(f"DELETE FROM {table} WHERE pickup_date = %s", (day,))
    cursor.execute(f'DELETE FROM "{BIG_SCHEMA}".loads WHERE pickup_date = %s', (day,))
    conn.commit()
    conn.autocommit = True
    cursor.execute(f"VACUUM {table}")
    conn.autocommit = False
    rows_before = _table_rows(conn, table)
    conn.close()

    event = new_version()
    pg.reset()  # cold, as pg_ours and psql
    with clock:
        outcome = _load(load_postgres.handle, event)
    event = new_version()
    pg.reset()
    replace = Clock()
    with replace:
        replaced = _load(load_postgres.handle, event)
    conn = _connect(spec)
    cursor = conn.cursor()
    cursor.execute(f"SELECT count(*) FROM {table} WHERE pickup_date = %s", (day,))
    rows_out = int(cursor.fetchone()[0])
    conn.close()
    steps = {k: outcome[k] for k in outcome if k.endswith("_seconds")}
    replace_steps = {k: replaced[k] for k in replaced if k.endswith("_seconds")}
    return {
        "rows_out": rows_out,
        "table_rows": rows_before,
        "replace_wall": replace.wall,
        "steps": steps,
        "replace_steps": replace_steps,
        **filled,
    }


def legacy_layout(conn: Any, schema: str) -> None:
    """The layout before issue 19, as its migrations 0001-0003 left it: unpartitioned tables, one index."""
    from shared.core.schemas import SERVICES, columns
    from shared.load import postgres as pg_load

    cursor = conn.cursor()
    cursor.execute(f"CREATE SCHEMA {pg_load.ident(schema)}")
    for sql in pg_load.ledger_sql(schema):
        cursor.execute(sql)
    cursor.execute(
        f"CREATE TABLE {pg_load.ident(schema)}.schema_migrations (id text PRIMARY KEY, applied_at timestamptz)"
    )
    for migration_id, _ in pg_load.migrations(schema)[:3]:
        cursor.execute(f"INSERT INTO {pg_load.ident(schema)}.schema_migrations VALUES (%s, now())", (migration_id,))
    for service in SERVICES:
        cols = ", ".join(f"{pg_load.ident(c.name)} {c.pg_type}" for c in columns(service))
        cursor.execute(f"CREATE TABLE {pg_load.table_ref(schema, service)} ({cols})")
        index = pg_load.ident(f"{service}_trips_pickup_date_idx")
        cursor.execute(f"CREATE INDEX {index} ON {pg_load.table_ref(schema, service)} (pickup_date)")
    conn.commit()


def pg_migrate(spec: dict[str, Any], clock: Clock) -> dict[str, Any]:
    """The migration of an unpartitioned table of `migrate_rows` rows into month partitions (0004)."""
    import pyarrow.parquet as pq

    from shared.core.schemas import columns
    from shared.load import pg_binary
    from shared.load import postgres as pg_load

    schema, service, day = spec["env"]["PG_SCHEMA"], spec["service"], dt.date.fromisoformat(spec["day"])
    conn = _connect(spec)
    legacy_layout(conn, schema)
    names = ", ".join(pg_load.ident(c.name) for c in columns(service))
    stream = pg_binary.copy_chunks(pq.read_table(spec["parquet"]), list(columns(service)), 8192)
    cursor = conn.cursor()
    cursor.execute(f"COPY {pg_load.table_ref(schema, service)} ({names}) FROM STDIN (FORMAT binary)", stream=stream)
    conn.commit()
    fill(conn, schema, service, day, spec["migrate_rows"], partitioned=False)
    conn.close()
    conn = _connect(spec)  # as a loader's cold start: a connection of its own
    with clock:
        applied = pg_load.migrate(conn, schema)
    cursor = conn.cursor()
    cursor.execute(f"SELECT count(*) FROM {pg_load.table_ref(schema, service)}")
    rows = int(cursor.fetchone()[0])
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", (f"{schema}.{service}_trips",))
    kind = cursor.fetchone()[0]
    cursor.execute(f"DROP SCHEMA {pg_load.ident(schema)} CASCADE")
    conn.commit()
    conn.close()
    if kind != "p" or "0004_partition_by_month" not in applied:
        raise RuntimeError(f"the migration did not partition the table: {applied}, relkind {kind}")
    return {"rows_out": rows, "migrated": applied}


CONTENDERS = {"pg_big": pg_big, "pg_migrate": pg_migrate}
