"""The PostgreSQL layout as SQL text: identifiers, the month-partitioned trips tables, comments, the ledger.

Every `{schema}.{service}_trips` is a partitioned table, `PARTITION BY RANGE (pickup_date)`,
one partition per calendar month, `{service}_trips_pYYYYMM`. Why months: a day is replaced
inside its month (DELETE of the day by the partition's pickup_date index, then COPY), so the cost
of a day does not grow with the years a user keeps; and a query over all of a service touches
about 12 partitions a year (one lock each), where day partitions would need 365 a year and
reach PostgreSQL's shared lock table (max_locks_per_transaction) over TLC's 15 years.
Columns and their types come from shared/core/schemas.py for every service.
"""

from __future__ import annotations

import datetime as dt
import re

from shared.core.errors import ConfigError
from shared.core.schemas import columns

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# A replaced day is about 3% of its month: vacuum a month after a replace or two rather than
# after 20% of it is dead (the default); per-table storage parameters, allowed on Cloud SQL.
PARTITION_STORAGE = "autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.05"


LOCK_TIMEOUT = "120s"  # how long a load or a DDL step waits for a lock before it is retried


def ident(name: str) -> str:
    """A quoted identifier; settings-supplied names are checked, never interpolated raw."""
    if not _IDENT.match(name):
        raise ConfigError(f"not a valid PostgreSQL identifier: {name!r}", field="identifier", value=name)
    return f'"{name}"'


def table_ref(schema: str, service: str) -> str:
    return f"{ident(schema)}.{ident(f'{service}_trips')}"


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def partition_name(service: str, day: dt.date) -> str:
    return f"{service}_trips_p{day:%Y%m}"


def partition_ref(schema: str, service: str, day: dt.date) -> str:
    return f"{ident(schema)}.{ident(partition_name(service, day))}"


def column_list(service: str) -> str:
    return ",\n  ".join(f"{ident(c.name)} {c.pg_type}" for c in columns(service))


def create_table_sql(schema: str, service: str) -> list[str]:
    """The partitioned parent and its (partitioned) pickup_date index; partitions come per month."""
    table = table_ref(schema, service)
    return [
        f"CREATE TABLE IF NOT EXISTS {table} (\n  {column_list(service)}\n) PARTITION BY RANGE (pickup_date)",
        f"CREATE INDEX IF NOT EXISTS {ident(f'{service}_trips_pickup_date_idx')} ON {table} (pickup_date)",
    ]


def create_partition_sql(schema: str, service: str, day: dt.date) -> list[str]:
    """The month's partition, made as a plain table and then attached.

    Why not `CREATE TABLE ... PARTITION OF`: that takes an ACCESS EXCLUSIVE lock on the parent,
    so it waits for every running reader of the table and blocks every later one behind it.
    ATTACH PARTITION takes SHARE UPDATE EXCLUSIVE, which readers and the loads of other days
    never conflict with; the table is empty, so its bound check reads nothing. The pickup_date
    index is created on it by the ATTACH (from the parent's partitioned index).
    """
    table, part, first = table_ref(schema, service), partition_ref(schema, service, day), month_start(day)
    return [
        f"CREATE TABLE IF NOT EXISTS {part} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
        f"WITH ({PARTITION_STORAGE})",
        f"ALTER TABLE {table} ATTACH PARTITION {part} "
        f"FOR VALUES FROM ('{first.isoformat()}') TO ('{next_month(first).isoformat()}')",
    ]


def declared_columns_sql(schema: str, service: str) -> list[str]:
    """Every declared column, added where a table made by an older release lacks it (issue 18 gave
    yellow its 2009-2010 coordinates): without them that table's COMMENTs and COPYs fail. Nullable,
    as every column here; a no-op on a table that has them."""
    table = table_ref(schema, service)
    return [f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {ident(c.name)} {c.pg_type}" for c in columns(service)]


def comment_sql(schema: str, service: str) -> list[str]:
    table = table_ref(schema, service)
    statements = [
        f"COMMENT ON TABLE {table} IS "
        + literal(
            f"NYC TLC {service} taxi trips, one row per trip, partitioned by month of pickup_date; "
            "each pickup_date is replaced whole from the lake."
        )
    ]
    statements += [f"COMMENT ON COLUMN {table}.{ident(c.name)} IS {literal(c.description)}" for c in columns(service)]
    return statements


def ledger_sql(schema: str) -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS {ident(schema)}.loads (\n"
        "  service text NOT NULL,\n  pickup_date date NOT NULL,\n  generation bigint NOT NULL,\n"
        "  rows bigint NOT NULL,\n  object text NOT NULL,\n  loaded_at timestamptz NOT NULL DEFAULT now(),\n"
        "  PRIMARY KEY (service, pickup_date)\n)",
        f"COMMENT ON TABLE {ident(schema)}.loads IS "
        + literal("Ledger: which lake object generation each (service, pickup_date) holds, and when it was loaded."),
    ]


def copy_sql(schema: str, service: str, day: dt.date, fmt: str = "binary", names: list[str] | None = None) -> str:
    """COPY straight into the day's month partition: no per-row routing, and PostgreSQL checks the
    partition's bound on every row (a row of another month fails the whole COPY).
    `names`: the partition's columns (declared, then any the schema contract added)."""
    listed = ", ".join(ident(name) for name in (names or [c.name for c in columns(service)]))
    return f"COPY {partition_ref(schema, service, day)} ({listed}) FROM STDIN WITH (FORMAT {fmt})"
