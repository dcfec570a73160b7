"""Month partitions of the trips tables: made on demand by the loader, and the one-time move of an
unpartitioned table (the layout before issue 19) into them.

A month's partition is made in a short transaction of its own, before the day's load: under an
advisory lock on (table, month), so two loaders of days of one new month do not both create it;
committed at once, so the SHARE UPDATE EXCLUSIVE lock that ATTACH takes on the parent is held
for milliseconds, never for a COPY. An empty partition left by a load that then failed is
harmless (status counts rows, not partitions). Made months are remembered per process.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

from shared.core import logs
from shared.core.errors import PermanentError
from shared.core.schemas import columns
from shared.load.postgres_ddl import (
    comment_sql,
    create_partition_sql,
    create_table_sql,
    ident,
    month_start,
    next_month,
    partition_name,
    partition_ref,
    table_ref,
)

_prepared: set[tuple[str, str, dt.date]] = set()
_prepared_lock = threading.Lock()


def forget() -> None:
    """After a table or partition went missing under a warm instance: check again on the next load."""
    with _prepared_lock:
        _prepared.clear()


def _attached(cursor: Any, schema: str, service: str, day: dt.date) -> bool | None:
    """None: no such table; False: a table of that name, not (yet) a partition; True: attached."""
    cursor.execute(
        "SELECT c.relispartition FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s",
        (schema, partition_name(service, day)),
    )
    row = cursor.fetchone()
    return None if row is None else bool(row[0])


def create_month(cursor: Any, schema: str, service: str, day: dt.date) -> bool:
    """Create and attach the month's partition if it is not attached yet (idempotent); True if made."""
    state = _attached(cursor, schema, service, day)
    if state:
        return False
    statements = create_partition_sql(schema, service, day)
    if state is None:
        cursor.execute(statements[0])
    cursor.execute(statements[1])
    return True


def prepare_month(conn: Any, schema: str, service: str, day: dt.date) -> None:
    """Make sure the month of `day` has its partition; its own committed transaction."""
    key = (schema, service, month_start(day))
    if key in _prepared:
        return
    cursor = conn.cursor()
    try:
        cursor.execute("SET LOCAL lock_timeout = '120s'")
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (f"{table_ref(schema, service)}/{month_start(day):%Y-%m}",),
        )
        made = create_month(cursor, schema, service, day)
        conn.commit()
    except BaseException:
        try:
            conn.rollback()
        except Exception:  # the pool closes a connection that saw an error
            pass
        raise
    if made:
        logs.info("postgres month partition created", table=f"{schema}.{service}_trips", month=f"{day:%Y-%m}")
    with _prepared_lock:
        _prepared.add(key)


def _relkind(cursor: Any, schema: str, name: str) -> str | None:
    cursor.execute(
        "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s",
        (schema, name),
    )
    row = cursor.fetchone()
    return None if row is None else str(row[0])


def convert_unpartitioned(cursor: Any, schema: str, service: str) -> dict[str, Any] | None:
    """Move an unpartitioned `{service}_trips` (the layout before issue 19) into month partitions.

    Runs inside the migrations' transaction (under their advisory lock), so it is all or nothing
    and a second run, or a second loader at once, finds the table partitioned and does nothing.
    The old table is renamed (ACCESS EXCLUSIVE: loads and readers of it wait for the commit, then
    see the partitioned table under the same name), the months from its min..max pickup_date are
    made and its rows copied month by month (INSERT ... SELECT by its pickup_date index, straight
    into each partition; a statement per month keeps each short), counted, the comments are applied
    to the new table, and the old one is dropped. Rows without a pickup_date cannot be
    placed in any month: the migration stops and names the table and the count (nothing moved).
    """
    name = f"{service}_trips"
    if _relkind(cursor, schema, name) != "r":
        return None
    started = time.monotonic()
    old_name = f"{service}_trips_unpartitioned"
    old = f"{ident(schema)}.{ident(old_name)}"
    cursor.execute(f"SELECT count(*) FROM {table_ref(schema, service)} WHERE pickup_date IS NULL")
    nulls = int(cursor.fetchone()[0])
    if nulls:
        raise PermanentError(
            f"{schema}.{name} has {nulls} rows without pickup_date; no month partition can hold them",
            reason="unpartitionable_rows",
            field="pickup_date",
            value=None,
            table=f"{schema}.{name}",
            rows=nulls,
        )
    cursor.execute(f"ALTER TABLE {table_ref(schema, service)} RENAME TO {ident(old_name)}")
    cursor.execute(
        f"ALTER INDEX IF EXISTS {ident(schema)}.{ident(f'{service}_trips_pickup_date_idx')} "
        f"RENAME TO {ident(f'{old_name}_pickup_date_idx')}"
    )
    for sql in create_table_sql(schema, service) + comment_sql(schema, service):
        cursor.execute(sql)
    cursor.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
        (schema, old_name),
    )
    present = {row[0] for row in cursor.fetchall()}
    names = ", ".join(ident(c.name) for c in columns(service) if c.name in present)
    cursor.execute(f"SELECT min(pickup_date), max(pickup_date) FROM {old}")
    first, last = cursor.fetchone()
    months = moved = 0
    month = month_start(first) if first is not None else None
    while month is not None and month <= last:
        create_month(cursor, schema, service, month)
        cursor.execute(  # a month per statement: each stays short (a client's socket timeout)
            f"INSERT INTO {partition_ref(schema, service, month)} ({names}) SELECT {names} FROM {old} "
            "WHERE pickup_date >= %s AND pickup_date < %s",
            (month, next_month(month)),
        )
        moved, months, month = moved + cursor.rowcount, months + 1, next_month(month)
    cursor.execute(f"SELECT count(*) FROM {old}")
    if int(cursor.fetchone()[0]) != moved:  # cannot happen: every row has a date in [first, last]
        raise PermanentError(f"moved {moved} rows of {schema}.{name}, not all", reason="migration_incomplete")
    cursor.execute(f"DROP TABLE {old}")
    return {
        "table": f"{schema}.{name}",
        "rows": moved,
        "months": months,
        "seconds": round(time.monotonic() - started, 1),
    }
