"""Replace one day of `{schema}.{service}_trips` in PostgreSQL in one transaction, with COPY.

The table is partitioned by month of pickup_date (shared/load/postgres_ddl.py); the day's
month partition is made first if missing, in a short transaction of its own
(shared/load/postgres_partitions.py). Then the transaction:
1. `pg_advisory_xact_lock` on a hash of (table, date): loads of one day queue,
   other days run in parallel;
2. read the `loads` ledger: a generation already loaded that is the same or
   newer means this event is a duplicate or arrived late -> commit nothing;
3. DELETE the day from its month partition (by the partition's pickup_date index: the cost
   does not grow with the years in the table), `COPY ... FROM STDIN (FORMAT binary)` into that
   partition (shared/load/pg_binary.py, sent through pg8000's `stream=`), upsert the ledger, COMMIT.
A failure anywhere rolls everything back: the previous contents of the day stay. Readers are
never blocked (DELETE and COPY take ROW EXCLUSIVE) and see the old day until the commit, then
the new one, never a mix.

Tables come from a migrations step run once per process under an advisory
lock: ordered, idempotent steps (SQL, or a function of the cursor) recorded in
`{schema}.schema_migrations` (all are applied again if a table was dropped by hand).
`0004_partition_by_month` moves a table of the earlier, unpartitioned layout into month
partitions (shared/load/postgres_partitions.py).
The column comments carry the TLC data dictionary from shared/core/schemas.py; their
migration id contains a fingerprint of the descriptions, so an edited
description is applied by the next cold start.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from shared.core import logs, pg
from shared.core.errors import TransientError
from shared.core.evolved_columns import column_of, extra_fields
from shared.core.schemas import SERVICES, columns
from shared.core.settings import Settings
from shared.load.partition import PartitionData, PartitionLoad
from shared.load.pg_binary import copy_chunks
from shared.load.postgres_columns import add_columns
from shared.load.postgres_columns import forget as forget_columns
from shared.load.postgres_ddl import (  # noqa: F401  (ident, table_ref: this module's names before issue 19)
    LOCK_TIMEOUT,
    comment_sql,
    copy_sql,
    create_table_sql,
    declared_columns_sql,
    ident,
    ledger_sql,
    partition_ref,
    table_ref,
)
from shared.load.postgres_partitions import convert_unpartitioned, prepare_month
from shared.load.postgres_partitions import forget as forget_partitions

COPY_ROWS = 8192  # rows per CopyData message (~2 MiB binary): the server parses one while the next is encoded
_MISSING_OBJECT = {"42P01", "3F000"}  # undefined_table, invalid_schema_name
_migrated: set[tuple[Any, ...]] = set()
_migrate_lock = threading.Lock()
Step = str | Callable[[Any], Any]  # a migration statement: SQL, or a function of the cursor


def _fingerprint() -> str:
    text = "|".join(f"{s}.{c.name}={c.description}" for s in SERVICES for c in columns(s))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _partition_by_month(schema: str, service: str) -> Callable[[Any], Any]:
    def step(cursor: Any) -> None:
        moved = convert_unpartitioned(cursor, schema, service)
        if moved is not None:
            logs.info("postgres table moved into month partitions", **moved)

    return step


def migrations(schema: str) -> list[tuple[str, list[Step]]]:
    """Ordered (id, steps); each step is idempotent, each id is applied once."""
    trips: list[Step] = [sql for service in SERVICES for sql in create_table_sql(schema, service)]
    # Re-applied whenever a column or its description changes (the fingerprint): a declared column
    # a table from an older release lacks is added first, so its COMMENT and the COPYs find it.
    comments: list[Step] = [
        sql for service in SERVICES for sql in [*declared_columns_sql(schema, service), *comment_sql(schema, service)]
    ]
    return [
        ("0001_ledger", list(ledger_sql(schema))),
        ("0002_trips_tables", trips),
        (f"0003_comments_{_fingerprint()}", comments),
        ("0004_partition_by_month", [_partition_by_month(schema, service) for service in SERVICES]),
    ]


def migrate(conn: Any, schema: str) -> list[str]:
    """Apply pending migrations in one transaction; concurrent cold starts serialize on a lock."""
    cursor = conn.cursor()
    try:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{schema}/migrations",))
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(schema)}")
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {ident(schema)}.schema_migrations ("
            "id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cursor.execute(f"SELECT id FROM {ident(schema)}.schema_migrations")
        done = {row[0] for row in cursor.fetchall()}
        expected = ["loads", *(f"{service}_trips" for service in SERVICES)]
        cursor.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s)", (schema, expected)
        )
        if cursor.fetchone()[0] < len(expected):  # a table was dropped by hand: apply everything again
            done = set()
        applied = []
        for migration_id, statements in migrations(schema):
            if migration_id in done:
                continue
            for step in statements:
                if callable(step):
                    step(cursor)
                else:
                    cursor.execute(step)
            cursor.execute(
                f"INSERT INTO {ident(schema)}.schema_migrations (id) VALUES (%s) "
                "ON CONFLICT (id) DO UPDATE SET applied_at = now()",
                (migration_id,),
            )
            applied.append(migration_id)
        conn.commit()
    except BaseException:
        pg.rollback_quietly(conn)
        raise
    if applied:
        logs.info("postgres migrations applied", schema=schema, migrations=applied)
    return applied


def ensure_migrated(conn: Any, settings: Settings) -> None:
    key = (settings.cloud_sql_instance, settings.pg_host, settings.pg_port, settings.pg_database, settings.pg_schema)
    if key in _migrated:
        return
    with _migrate_lock:
        if key not in _migrated:
            migrate(conn, settings.pg_schema)
            _migrated.add(key)


def replace_day(
    conn: Any, settings: Settings, load: PartitionLoad, table: pa.Table, timings: dict[str, float]
) -> dict[str, Any]:
    """The one transaction; returns outcome fields. Rolls back on any error."""
    schema, service, day = settings.pg_schema, load.service, load.date
    target, part = table_ref(schema, service), partition_ref(schema, service, day)
    with logs.timed(timings, "partition_seconds"):
        prepare_month(conn, schema, service, day)
    cursor = conn.cursor()
    try:
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{target}/{day.isoformat()}",))
        cursor.execute(
            f"SELECT generation FROM {ident(schema)}.loads WHERE service = %s AND pickup_date = %s", (service, day)
        )
        row = cursor.fetchone()
        if row is not None and int(row[0]) >= load.generation:
            conn.rollback()
            newer = int(row[0]) > load.generation
            return {
                "message": "skipped: a newer generation is already loaded"
                if newer
                else "skipped: this generation is already loaded",
                "skipped": "older_generation" if newer else "already_loaded",
                "loaded_generation": int(row[0]),
                "rows": 0,
            }
        with logs.timed(timings, "delete_seconds"):
            cursor.execute(f"DELETE FROM {part} WHERE pickup_date = %s", (day,))
            deleted = cursor.rowcount
        with logs.timed(timings, "copy_seconds"):
            # the declared columns, then any the schema contract added (shared/core/evolved_columns.py)
            listed = [*columns(service), *(column_of(f, service) for f in extra_fields(table.schema, service))]
            stream = copy_chunks(table, listed, COPY_ROWS)
            cursor.execute(copy_sql(schema, service, day, names=[c.name for c in listed]), stream=stream)
            copied = cursor.rowcount
        if copied != table.num_rows:
            raise TransientError(f"COPY reported {copied} rows, expected {table.num_rows}", reason="copy_count")
        cursor.execute(
            f"INSERT INTO {ident(schema)}.loads (service, pickup_date, generation, rows, object, loaded_at) "
            "VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (service, pickup_date) DO UPDATE SET "
            "generation = EXCLUDED.generation, rows = EXCLUDED.rows, object = EXCLUDED.object, "
            "loaded_at = EXCLUDED.loaded_at",
            (service, day, load.generation, table.num_rows, load.uri),
        )
        with logs.timed(timings, "commit_seconds"):
            conn.commit()
    except BaseException:
        pg.rollback_quietly(conn)
        raise
    return {
        "message": "day replaced in PostgreSQL",
        "rows_deleted": deleted,
        "replaced_generation": int(row[0]) if row else None,
    }


def load_partition(
    load: PartitionLoad, data: PartitionData, settings: Settings, timings: dict[str, float]
) -> dict[str, Any]:
    try:
        with pg.connection(settings) as conn:
            ensure_migrated(conn, settings)
            added = add_columns(conn, settings, load.service, extra_fields(data.table.schema, load.service))
            result = replace_day(conn, settings, load, data.table, timings)
    except Exception as exc:
        code = exc.args[0].get("C") if exc.args and isinstance(exc.args[0], dict) else None
        if code in _MISSING_OBJECT:  # dropped under a warm instance: migrate again on the retry
            _migrated.clear()
            forget_partitions()
            forget_columns()
            raise TransientError(
                f"table or schema missing: {exc}", reason="database_objects_missing", sqlstate=code
            ) from exc
        raise
    return {
        "table": f"{settings.pg_schema}.{load.service}_trips",
        **result,
        **({"columns_added": added} if added else {}),
    }
