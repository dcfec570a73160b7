"""Schema evolution in PostgreSQL: the columns a partition brings beyond the declared schema.

Why its own module: adding a column is DDL on the partitioned parent (it reaches every month
partition, and partitions made later copy it with LIKE), taken in its own short transaction
before the day's load, not inside it: a day's transaction should hold only ROW EXCLUSIVE locks.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from shared.core import logs, pg
from shared.core.errors import PermanentError
from shared.core.evolved_columns import column_of
from shared.core.settings import Settings
from shared.load.postgres_ddl import LOCK_TIMEOUT, ident, literal, table_ref

_columns_known: set[tuple[str, str, str]] = set()  # (schema, service, column) added or found


def forget() -> None:
    """Forget what this instance has seen (the table was dropped under a warm instance)."""
    _columns_known.clear()


def add_columns(conn: Any, settings: Settings, service: str, added: list[pa.Field]) -> list[str]:
    """Schema evolution: the partition's added columns (names, types checked in evolved_columns.py)
    become nullable columns with a COMMENT naming the month that brought them, in a short
    transaction under the migrations' lock: two loaders adding one column serialize, the second
    finds it. A column there with another type is permanent (`column_type_changed`)."""
    schema, wanted, new = settings.pg_schema, [column_of(f, service) for f in added], []
    if all((schema, service, c.name) in _columns_known for c in wanted):  # none, or all seen by this process
        return []
    target, cursor = table_ref(schema, service), conn.cursor()
    try:
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{schema}/migrations",))
        sql = (
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s AND table_name = %s"
        )
        cursor.execute(sql, (schema, f"{service}_trips"))
        have = dict(cursor.fetchall())
        for column in wanted:
            if have.get(column.name, column.pg_type) != column.pg_type:
                raise PermanentError(
                    f"column {column.name} of {target} is {have[column.name]}, the partition's is {column.pg_type}",
                    reason="column_type_changed",
                    field=column.name,
                    value=column.pg_type,
                )
            if column.name not in have:
                cursor.execute(f"ALTER TABLE {target} ADD COLUMN IF NOT EXISTS {ident(column.name)} {column.pg_type}")
                cursor.execute(f"COMMENT ON COLUMN {target}.{ident(column.name)} IS {literal(column.description)}")
                new.append(column.name)
        conn.commit()
    except BaseException:
        pg.rollback_quietly(conn)
        raise
    _columns_known.update((schema, service, c.name) for c in wanted)
    if new:
        logs.info("postgres columns added by schema evolution", table=target, columns=new)
    return new
