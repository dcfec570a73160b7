"""The month-partitioned Postgres layout (issue 19) against the stack's real PostgreSQL.

Days land in their month's partition, the status query reads the partitioned table, the binary
COPY keeps every value, and a table of the earlier unpartitioned layout, with rows, is moved
into month partitions by the migrations: once, by two loaders at once, and never with rows lost.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from shared.core import pg
from shared.core.errors import PermanentError
from shared.core.schemas import SERVICES, columns
from shared.core.settings import LOAD_POSTGRES, get_settings
from shared.load import pg_binary
from shared.load import postgres as postgres_load
from shared.load.postgres_partitions import forget
from shared.operate.status_reads import read_postgres
from tests.integration import test_load_postgres
from tests.integration.test_load_postgres import connect, deliver, query, upload

pg_schema = test_load_postgres.pg_schema  # the fixture: a schema of the test's own, dropped after it

DAYS = (dt.date(2020, 12, 31), dt.date(2021, 1, 1), dt.date(2021, 2, 1))
REPO = Path(__file__).resolve().parents[2]


def on_day(table: pa.Table, day: dt.date) -> pa.Table:
    """The real day's rows moved to `day` (pickup_date only: the partition key)."""
    index = table.schema.get_field_index("pickup_date")
    return table.set_column(index, "pickup_date", pa.array([day] * table.num_rows, pa.date32()))


def partitions(schema: str) -> dict[str, str]:
    """partition name -> its bound, for yellow_trips."""
    rows = query(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass",
        f"{schema}.yellow_trips",
    )
    return {name: bound for name, bound in rows}


def test_days_land_in_their_month_partition_and_status_reads_them(fresh_bucket, pg_schema, real_day):
    for day in DAYS:
        deliver(upload(fresh_bucket, on_day(real_day, day), day))
    assert query("SELECT relkind FROM pg_class WHERE oid = %s::regclass", f"{pg_schema}.yellow_trips") == [["p"]]
    assert partitions(pg_schema) == {
        "yellow_trips_p202012": "FOR VALUES FROM ('2020-12-01') TO ('2021-01-01')",
        "yellow_trips_p202101": "FOR VALUES FROM ('2021-01-01') TO ('2021-02-01')",
        "yellow_trips_p202102": "FOR VALUES FROM ('2021-02-01') TO ('2021-03-01')",
    }
    placed = query(
        f"SELECT tableoid::regclass::text, pickup_date, count(*) "
        f'FROM "{pg_schema}".yellow_trips GROUP BY 1, 2 ORDER BY 2'
    )
    assert placed == [[f"{pg_schema}.yellow_trips_p{d:%Y%m}", d, real_day.num_rows] for d in DAYS]
    # each partition has the pickup_date index (from the parent's) and the autovacuum settings
    indexed = query(
        "SELECT tablename FROM pg_indexes WHERE schemaname = %s AND indexdef LIKE '%%(pickup_date)'", pg_schema
    )
    assert {f"yellow_trips_p{d:%Y%m}" for d in DAYS} <= {r[0] for r in indexed}
    (options,) = query("SELECT reloptions FROM pg_class WHERE oid = %s::regclass", f"{pg_schema}.yellow_trips_p202101")
    assert "autovacuum_vacuum_scale_factor=0.02" in options[0]
    # a replace of one day touches only that day
    deliver(upload(fresh_bucket, on_day(real_day.slice(0, 5), DAYS[1]), DAYS[1]))
    with connect() as conn:
        counts, ledger = read_postgres(conn, pg_schema, "yellow", DAYS[0], DAYS[-1])
    assert counts == {DAYS[0]: real_day.num_rows, DAYS[1]: 5, DAYS[2]: real_day.num_rows}
    assert ledger[DAYS[1]].rows == 5


def test_binary_copy_round_trips_nulls_empty_strings_unicode_and_special_floats(fresh_bucket, pg_schema, real_day):
    table = real_day.slice(0, 4)
    flags = pa.array(["", None, "Zoë ☕", 'a "quoted", \\N'], pa.string())
    fares = pa.array([float("nan"), None, float("inf"), -0.1 - 0.2], pa.float64())
    table = table.set_column(table.schema.get_field_index("store_and_fwd_flag"), "store_and_fwd_flag", flags)
    table = table.set_column(table.schema.get_field_index("fare_amount"), "fare_amount", fares)
    deliver(upload(fresh_bucket, table))
    names = ", ".join(f'"{c.name}"' for c in columns("yellow"))
    rows = query(f'SELECT {names} FROM "{pg_schema}".yellow_trips')
    expected = [list(r.values()) for r in table.to_pylist()]
    key = [c.name for c in columns("yellow")].index("store_and_fwd_flag")
    got = sorted(rows, key=lambda r: str(r[key]))
    want = sorted(expected, key=lambda r: str(r[key]))
    fare = [c.name for c in columns("yellow")].index("fare_amount")
    for g, w in zip(got, want, strict=True):
        nan = [isinstance(v, float) and math.isnan(v) for v in (g[fare], w[fare])]
        assert nan == [True, True] or g[fare] == w[fare]
        g[fare] = w[fare] = None
        assert g == w


# ---- the migration of an unpartitioned table ---------------------------------------------------


def make_legacy(schema: str, tables: list[pa.Table], omit: tuple[str, ...] = (), comments_id: str = "") -> None:
    """The layout before issue 19, as its migrations 0001-0003 left it, with rows. `omit`: declared
    columns that release's tables lacked; `comments_id`: its 0003 id (another column fingerprint)."""
    kept = {service: [c for c in columns(service) if c.name not in omit] for service in SERVICES}
    names = ", ".join(f'"{c.name}"' for c in kept["yellow"])
    with connect() as conn:
        cursor = conn.cursor()
        cursor.execute(f'CREATE SCHEMA "{schema}"')
        for sql in postgres_load.ledger_sql(schema):
            cursor.execute(sql)
        cursor.execute(f'CREATE TABLE "{schema}".schema_migrations (id text PRIMARY KEY, applied_at timestamptz)')
        for migration_id, _ in postgres_load.migrations(schema)[:3]:
            migration_id = comments_id if comments_id and migration_id.startswith("0003_") else migration_id
            cursor.execute(f'INSERT INTO "{schema}".schema_migrations VALUES (%s, now())', (migration_id,))
        for service in SERVICES:
            service_cols = ",\n  ".join(f'"{c.name}" {c.pg_type}' for c in kept[service])
            cursor.execute(f'CREATE TABLE "{schema}".{service}_trips (\n  {service_cols}\n)')
            cursor.execute(f'CREATE INDEX {service}_trips_pickup_date_idx ON "{schema}".{service}_trips (pickup_date)')
        for table in tables:
            table = table.select([c.name for c in kept["yellow"]])
            stream = pg_binary.copy_chunks(table, kept["yellow"], 8192)
            cursor.execute(f'COPY "{schema}".yellow_trips ({names}) FROM STDIN WITH (FORMAT binary)', stream=stream)
        conn.commit()


def fingerprint(schema: str) -> list:
    return query(
        f"SELECT pickup_date, count(*), sum(fare_amount::numeric), max(pickup_datetime), count(store_and_fwd_flag) "
        f'FROM "{schema}".yellow_trips GROUP BY 1 ORDER BY 1'
    )


def migrate_now() -> list[str]:
    postgres_load._migrated.clear()
    forget()
    with pg.connection(get_settings(LOAD_POSTGRES)) as conn:
        return postgres_load.migrate(conn, get_settings(LOAD_POSTGRES).pg_schema)


def test_an_unpartitioned_table_with_rows_is_moved_into_month_partitions_once(fresh_bucket, pg_schema, real_day):
    make_legacy(pg_schema, [on_day(real_day, d) for d in DAYS])
    before = fingerprint(pg_schema)
    assert query("SELECT relkind FROM pg_class WHERE oid = %s::regclass", f"{pg_schema}.yellow_trips") == [["r"]]
    assert len(before) == 3 and sum(r[1] for r in before) == 3 * real_day.num_rows

    assert migrate_now() == ["0004_partition_by_month"]
    assert query("SELECT relkind FROM pg_class WHERE oid = %s::regclass", f"{pg_schema}.yellow_trips") == [["p"]]
    assert fingerprint(pg_schema) == before, "every row moved, none lost or doubled"
    assert set(partitions(pg_schema)) == {"yellow_trips_p202012", "yellow_trips_p202101", "yellow_trips_p202102"}
    assert query("SELECT to_regclass(%s)", f"{pg_schema}.yellow_trips_unpartitioned") == [[None]]
    (comment,) = query("SELECT col_description(%s::regclass, 10)", f"{pg_schema}.yellow_trips")[0]
    assert comment, "the data dictionary is on the new table"
    assert migrate_now() == [], "a second run finds nothing to do"
    assert fingerprint(pg_schema) == before

    # and loads work on the moved table: a replace of a moved day, a day of a new month
    deliver(upload(fresh_bucket, on_day(real_day.slice(0, 9), DAYS[1]), DAYS[1]))
    deliver(upload(fresh_bucket, on_day(real_day, dt.date(2021, 3, 5)), dt.date(2021, 3, 5)))
    after = {r[0]: r[1] for r in fingerprint(pg_schema)}
    assert after == {DAYS[0]: 96, DAYS[1]: 9, DAYS[2]: 96, dt.date(2021, 3, 5): 96}


COORDINATES = ("pickup_longitude", "pickup_latitude", "dropoff_longitude", "dropoff_latitude")


def test_tables_of_a_release_before_the_2009_coordinates_get_them_and_keep_loading(fresh_bucket, pg_schema, real_day):
    """Issue 18 declared yellow's 2009-2010 coordinates: a deployment's yellow_trips made before
    lacks them, and the re-applied comments (a new column fingerprint) and every COPY named them.
    Before the fix: migrate failed 'column "pickup_longitude" ... does not exist' (42703)."""
    make_legacy(pg_schema, [on_day(real_day, DAYS[0])], omit=COORDINATES, comments_id="0003_comments_0123456789ab")
    before = fingerprint(pg_schema)

    applied = migrate_now()
    assert applied[0].startswith("0003_comments_") and applied[1:] == ["0004_partition_by_month"]
    got = {
        r[0]
        for r in query(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'yellow_trips'",
            pg_schema,
        )
    }
    assert set(COORDINATES) <= got
    assert fingerprint(pg_schema) == before, "the rows are all there, coordinates null"
    assert query(f'SELECT count(pickup_longitude) FROM "{pg_schema}".yellow_trips') == [[0]]
    deliver(upload(fresh_bucket, on_day(real_day, DAYS[1]), DAYS[1]))
    assert {r[0]: r[1] for r in fingerprint(pg_schema)} == {DAYS[0]: 96, DAYS[1]: 96}


def test_two_loaders_migrating_at_once_move_the_table_once(fresh_bucket, pg_schema, real_day):
    make_legacy(pg_schema, [on_day(real_day, d) for d in DAYS])
    before = fingerprint(pg_schema)
    settings = get_settings(LOAD_POSTGRES)
    results: list = []
    start = threading.Barrier(2)

    def loader() -> None:
        conn = pg.connect(settings)
        try:
            start.wait()
            results.append(postgres_load.migrate(conn, settings.pg_schema))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=loader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(results, key=len) == [[], ["0004_partition_by_month"]]
    assert fingerprint(pg_schema) == before


def test_rows_without_a_pickup_date_stop_the_migration_and_nothing_moves(fresh_bucket, pg_schema, real_day):
    make_legacy(pg_schema, [on_day(real_day, DAYS[0])])
    with connect() as conn:
        conn.cursor().execute(f'UPDATE "{pg_schema}".yellow_trips SET pickup_date = NULL WHERE vendor_id = 1')
        conn.commit()
    before = fingerprint(pg_schema)
    with pytest.raises(PermanentError) as raised:
        migrate_now()
    assert raised.value.reason == "unpartitionable_rows" and raised.value.field == "pickup_date"
    assert raised.value.details["rows"] == sum(r[1] for r in before if r[0] is None) > 0
    assert query("SELECT relkind FROM pg_class WHERE oid = %s::regclass", f"{pg_schema}.yellow_trips") == [["r"]]
    assert fingerprint(pg_schema) == before


def test_the_operator_command_migrates_with_the_loaders_code(fresh_bucket, pg_schema, real_day):
    """`python -m shared.operate.pg_migrate`, as a person runs it before deploying onto a big table."""
    make_legacy(pg_schema, [on_day(real_day, d) for d in DAYS])
    before = fingerprint(pg_schema)
    command = [sys.executable, "-m", "shared.operate.pg_migrate"]
    proc = subprocess.run(command, cwd=REPO, env={**os.environ}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcome["schema"] == pg_schema and outcome["applied"] == ["0004_partition_by_month"]
    assert fingerprint(pg_schema) == before
    again = subprocess.run(command, cwd=REPO, env={**os.environ}, capture_output=True, text=True, timeout=300)
    assert json.loads(again.stdout.strip().splitlines()[-1])["applied"] == []
