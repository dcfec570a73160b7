"""Replace one day of `{schema}.{service}_trips` in PostgreSQL in one transaction, with COPY.

The transaction:
1. `pg_advisory_xact_lock` on a hash of (table, date): loads of one day queue,
   other days run in parallel;
2. read the `loads` ledger: a generation already loaded that is the same or
   newer means this event is a duplicate or arrived late -> commit nothing;
3. DELETE the day, `COPY ... FROM STDIN` the rows (CSV written by pyarrow from
   the arrow table, sent through pg8000's `stream=`), upsert the ledger, COMMIT.
A failure anywhere rolls everything back: the previous contents of the day stay.

Tables come from a migrations step run once per process under an advisory
lock: ordered, idempotent statements recorded in `{schema}.schema_migrations`
(all are applied again if a table was dropped by hand).
The column comments carry the TLC data dictionary from shared/core/schemas.py; their
migration id contains a fingerprint of the descriptions, so an edited
description is applied by the next cold start.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from shared.core import logs, pg
from shared.core.errors import ConfigError, PermanentError, TransientError
from shared.core.evolved_columns import column_of, extra_fields
from shared.core.schemas import SERVICES, columns
from shared.core.settings import Settings
from shared.load.partition import PartitionData, PartitionLoad

COPY_ROWS = 8192  # rows per CopyData message (~1 MiB): far fewer syscalls than pg8000's 8 KiB reads
LOCK_TIMEOUT = "120s"
_MISSING_OBJECT = {"42P01", "3F000"}  # undefined_table, invalid_schema_name
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_migrated: set[tuple[Any, ...]] = set()
_columns_known: set[tuple[str, str, str]] = set()  # (schema, service, column) added or found
_migrate_lock = threading.Lock()


def ident(name: str) -> str:
    """A quoted identifier; settings-supplied names are checked, never interpolated raw."""
    if not _IDENT.match(name):
        raise ConfigError(f"not a valid PostgreSQL identifier: {name!r}", field="identifier", value=name)
    return f'"{name}"'


def table_ref(schema: str, service: str) -> str:
    return f"{ident(schema)}.{ident(f'{service}_trips')}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def create_table_sql(schema: str, service: str) -> list[str]:
    table = table_ref(schema, service)
    cols = ",\n  ".join(f"{ident(c.name)} {c.pg_type}" for c in columns(service))
    return [
        f"CREATE TABLE IF NOT EXISTS {table} (\n  {cols}\n)",
        f"CREATE INDEX IF NOT EXISTS {ident(f'{service}_trips_pickup_date_idx')} ON {table} (pickup_date)",
    ]


def comment_sql(schema: str, service: str) -> list[str]:
    table = table_ref(schema, service)
    statements = [
        f"COMMENT ON TABLE {table} IS "
        + _literal(f"NYC TLC {service} taxi trips, one row per trip; each pickup_date is replaced whole from the lake.")
    ]
    statements += [f"COMMENT ON COLUMN {table}.{ident(c.name)} IS {_literal(c.description)}" for c in columns(service)]
    return statements


def ledger_sql(schema: str) -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS {ident(schema)}.loads (\n"
        "  service text NOT NULL,\n  pickup_date date NOT NULL,\n  generation bigint NOT NULL,\n"
        "  rows bigint NOT NULL,\n  object text NOT NULL,\n  loaded_at timestamptz NOT NULL DEFAULT now(),\n"
        "  PRIMARY KEY (service, pickup_date)\n)",
        f"COMMENT ON TABLE {ident(schema)}.loads IS "
        + _literal("Ledger: which lake object generation each (service, pickup_date) holds, and when it was loaded."),
    ]


def _fingerprint() -> str:
    text = "|".join(f"{s}.{c.name}={c.description}" for s in SERVICES for c in columns(s))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def migrations(schema: str) -> list[tuple[str, list[str]]]:
    """Ordered (id, statements); each statement is idempotent, each id is applied once."""
    trips = [sql for service in SERVICES for sql in create_table_sql(schema, service)]
    comments = [sql for service in SERVICES for sql in comment_sql(schema, service)]
    return [
        ("0001_ledger", ledger_sql(schema)),
        ("0002_trips_tables", trips),
        (f"0003_comments_{_fingerprint()}", comments),
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
            for sql in statements:
                cursor.execute(sql)
            cursor.execute(
                f"INSERT INTO {ident(schema)}.schema_migrations (id) VALUES (%s) "
                "ON CONFLICT (id) DO UPDATE SET applied_at = now()",
                (migration_id,),
            )
            applied.append(migration_id)
        conn.commit()
    except BaseException:
        _rollback(conn)
        raise
    if applied:
        logs.info("postgres migrations applied", schema=schema, migrations=applied)
    return applied


def _rollback(conn: Any) -> None:
    """Roll back without masking the error that got us here (the connection may be dead)."""
    try:
        conn.rollback()
    except Exception:  # the pool closes a connection that saw an error
        pass


def ensure_migrated(conn: Any, settings: Settings) -> None:
    key = (settings.cloud_sql_instance, settings.pg_host, settings.pg_port, settings.pg_database, settings.pg_schema)
    if key in _migrated:
        return
    with _migrate_lock:
        if key not in _migrated:
            migrate(conn, settings.pg_schema)
            _migrated.add(key)


def csv_chunks(table: pa.Table) -> Iterator[memoryview]:
    """The rows as PostgreSQL-ready CSV, one chunk of COPY_ROWS rows at a time (no per-row Python).

    Encoding chunk by chunk lets the server parse one chunk while pyarrow writes
    the next. pyarrow quotes every string and leaves nulls as empty unquoted
    fields, which is exactly PostgreSQL's CSV rule for NULL vs empty string;
    timestamps are written as naive ISO text, so they round-trip without any
    time-zone shift.
    """
    options = pacsv.WriteOptions(include_header=False, batch_size=COPY_ROWS)
    for start in range(0, table.num_rows, COPY_ROWS):
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table.slice(start, COPY_ROWS), sink, write_options=options)
        yield memoryview(sink.getvalue())


def copy_sql(schema: str, service: str, names: list[str] | None = None) -> str:
    """`names`: the partition's columns (declared, then any the schema contract added)."""
    listed = ", ".join(ident(name) for name in (names or [c.name for c in columns(service)]))
    return f"COPY {table_ref(schema, service)} ({listed}) FROM STDIN WITH (FORMAT csv)"


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
                cursor.execute(f"COMMENT ON COLUMN {target}.{ident(column.name)} IS {_literal(column.description)}")
                new.append(column.name)
        conn.commit()
    except BaseException:
        _rollback(conn)
        raise
    _columns_known.update((schema, service, c.name) for c in wanted)
    if new:
        logs.info("postgres columns added by schema evolution", table=target, columns=new)
    return new


def replace_day(
    conn: Any, settings: Settings, load: PartitionLoad, table: pa.Table, timings: dict[str, float]
) -> dict[str, Any]:
    """The one transaction; returns outcome fields. Rolls back on any error."""
    schema, service, day = settings.pg_schema, load.service, load.date
    target = table_ref(schema, service)
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
            cursor.execute(f"DELETE FROM {target} WHERE pickup_date = %s", (day,))
            deleted = cursor.rowcount
        with logs.timed(timings, "copy_seconds"):
            cursor.execute(copy_sql(schema, service, table.column_names), stream=csv_chunks(table))
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
        _rollback(conn)
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
            _columns_known.clear()
            raise TransientError(
                f"table or schema missing: {exc}", reason="database_objects_missing", sqlstate=code
            ) from exc
        raise
    return {
        "table": f"{settings.pg_schema}.{load.service}_trips",
        **result,
        **({"columns_added": added} if added else {}),
    }
