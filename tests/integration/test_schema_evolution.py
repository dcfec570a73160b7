"""Schema evolution through the stack's real parts: a yellow 2025 parquet with a column TLC may add
next, ingested against fake-gcs-server and loaded into the BigQuery emulator (through the stack's
bridge) and PostgreSQL by the functions' own handlers; and the `freeze` contract.

Before the schema contract, the new column dead-lettered the whole month as `wrong_schema`
("unexpected ['Street_Repair_Fee']"). Now (SCHEMA_CONTRACT=evolve, the default) it flows on as a
nullable column: in the lake's partitions, in BigQuery with a description naming the month that
brought it, in Postgres with a COMMENT; a day of an earlier month (no such column) loads after it
as before, the column null.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import threading
import uuid

import pg8000.dbapi
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from functions import ingest as ingest_function
from functions import load_bigquery, load_postgres
from local.tlc_columns import to_parquet_types
from local.tlc_data import generate_month
from shared.core import clients, paths, pg
from shared.core.settings import LOAD_POSTGRES, get_settings
from shared.load import bigquery as bigquery_load
from tests.gcs_events import message_published_event, pubsub_notification_event

NEW = "Street_Repair_Fee"
JUNE, MAY = dt.date(2025, 6, 3), dt.date(2025, 5, 10)


@pytest.fixture
def destinations(fresh_bucket, settings_env):
    """A BigQuery dataset and a Postgres schema of this test's own."""
    name = f"it_{uuid.uuid4().hex[:10]}"
    settings_env(BQ_DATASET=name, BQ_PARTITION_EXPIRATION_DAYS="0", PG_SCHEMA=name)
    clients.bigquery().create_dataset(name)  # Terraform's job: the loader may not create datasets
    bigquery_load._ensured.clear()
    pg.reset()
    settings = get_settings(LOAD_POSTGRES)
    yield name, settings
    pg.reset()
    clients.bigquery().delete_dataset(name, delete_contents=True, not_found_ok=True)
    with _connect(settings) as conn:
        conn.cursor().execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        conn.commit()


def _connect(settings):
    return pg8000.dbapi.connect(
        user=settings.pg_user,
        password=settings.pg_password or None,
        host=settings.pg_host,
        port=settings.pg_port,
        database=settings.pg_database,
    )


def query_pg(settings, sql: str, *args) -> list:
    conn = _connect(settings)
    try:
        cursor = conn.cursor()
        cursor.execute(sql, args)
        return [list(row) for row in cursor.fetchall()]
    finally:
        conn.close()


def serve_parquet(data_dir, settings_env, year: int, month: int, new_values: list | None) -> pa.Table:
    """A yellow month as TLC's own parquet, with the new column when `new_values` is given."""
    table = to_parquet_types(generate_month("yellow", year, month, rows=900, seed=11, quirks=False))
    if new_values is not None:
        table = table.append_column(NEW, pa.array((new_values * table.num_rows)[: table.num_rows], pa.float64()))
    (data_dir / "yellow").mkdir(exist_ok=True)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    (data_dir / "yellow" / f"yellow_tripdata_{year}-{month:02d}.parquet").write_bytes(sink.getvalue())
    return table


def use_parquet(tlc, settings_env) -> None:
    """The test's TLC server, with the file names of TLC's own site (parquet)."""
    tlc[1]()
    settings_env(SOURCE_URL_TEMPLATE=os.environ["SOURCE_URL_TEMPLATE"].replace(".csv.gz", ".parquet"))


def ingest_and_load(bucket, day: dt.date) -> dict:
    """Ingest the date, then deliver its partition's finalize event to both loaders."""
    ingest_function.handle(message_published_event({"date": day.isoformat(), "service": "yellow"}))
    blob = bucket.get_blob(paths.trips_object("yellow", day))
    assert blob is not None, f"no partition for {day}: the month did not complete"
    for loader in (load_bigquery, load_postgres):
        loader.handle(pubsub_notification_event(bucket.name, blob.name, blob.generation))
    return json.loads(bucket.blob(paths.staging_manifest("yellow", day.year, day.month)).download_as_bytes())


def test_a_new_column_flows_to_the_lake_bigquery_and_postgres(fresh_bucket, tlc, settings_env, destinations):
    dataset, settings = destinations
    data_dir, _ = tlc
    use_parquet(tlc, settings_env)
    serve_parquet(data_dir, settings_env, 2025, 6, [1.25, None, 0.0])
    serve_parquet(data_dir, settings_env, 2025, 5, None)

    manifest = ingest_and_load(fresh_bucket, JUNE)

    # the lake: the partition carries the column after the declared ones, with its origin
    blob = fresh_bucket.get_blob(paths.trips_object("yellow", JUNE))
    lake = pq.read_table(io.BytesIO(blob.download_as_bytes()))
    assert lake.schema.names[-1] == "street_repair_fee" and lake.schema.field(-1).type == pa.float64()
    assert set(lake["street_repair_fee"].to_pylist()) == {1.25, None, 0.0}
    (record,) = manifest["schema_contract"]["new_columns"]
    assert record == {"source": NEW, "name": "street_repair_fee", "kind": "float", "action": "added"}

    # BigQuery: a NULLABLE FLOAT column with a description naming the month, and the values
    table = clients.bigquery().get_table(f"{dataset}.yellow_trips")
    field = {f.name: f for f in table.schema}["street_repair_fee"]
    assert field.mode == "NULLABLE" and field.field_type in ("FLOAT", "FLOAT64")
    assert "2025-06" in field.description and NEW in field.description
    sql = f"SELECT street_repair_fee AS v, count(*) AS n FROM `{dataset}.yellow_trips` GROUP BY 1"
    in_bigquery = {r["v"]: r["n"] for r in clients.bigquery().query(sql).result()}
    expected = {v: lake["street_repair_fee"].to_pylist().count(v) for v in (1.25, None, 0.0)}
    assert in_bigquery == expected

    # Postgres: the column with its COMMENT, and the same values
    schema = settings.pg_schema
    [[kind, comment]] = query_pg(
        settings,
        "SELECT data_type, col_description((quote_ident(table_schema) || '.yellow_trips')::regclass, ordinal_position) "
        "FROM information_schema.columns WHERE table_schema = %s AND table_name = 'yellow_trips' "
        "AND column_name = 'street_repair_fee'",
        schema,
    )
    assert kind == "double precision" and "2025-06" in comment
    in_postgres = dict(
        (v, n)
        for v, n in query_pg(settings, f'SELECT street_repair_fee, count(*) FROM "{schema}".yellow_trips GROUP BY 1')
    )
    assert in_postgres == expected

    # a day of an earlier month, without the column, loads after it: the column is null that day
    may = ingest_and_load(fresh_bucket, MAY)
    assert may["schema_contract"]["new_columns"] == []
    sql = (
        f"SELECT count(*) AS n, countif(street_repair_fee IS NOT NULL) AS v FROM `{dataset}.yellow_trips` "
        f"WHERE pickup_date = DATE '{MAY}'"
    )
    [row] = list(clients.bigquery().query(sql).result())
    may_rows = may["days"][MAY.isoformat()]["rows_written"]
    assert (row["n"], row["v"]) == (may_rows, 0) and may_rows > 0
    assert query_pg(
        settings, f'SELECT count(*), count(street_repair_fee) FROM "{schema}".yellow_trips WHERE pickup_date = %s', MAY
    ) == [[may_rows, 0]]

    # the June day again (forced): the column is there already; the day is replaced, not doubled
    ingest_function.handle(message_published_event({"date": JUNE.isoformat(), "service": "yellow", "force": True}))
    blob = fresh_bucket.get_blob(paths.trips_object("yellow", JUNE))
    for loader in (load_bigquery, load_postgres):
        loader.handle(pubsub_notification_event(fresh_bucket.name, blob.name, blob.generation))
    sql = (
        f"SELECT street_repair_fee AS v, count(*) AS n FROM `{dataset}.yellow_trips` "
        f"WHERE pickup_date = DATE '{JUNE}' GROUP BY 1"
    )
    again = {r["v"]: r["n"] for r in clients.bigquery().query(sql).result()}
    assert again == expected and sum(again.values()) == lake.num_rows


def test_freeze_dead_letters_the_month_naming_the_column(fresh_bucket, tlc, settings_env, dead_letters):
    data_dir, _ = tlc
    use_parquet(tlc, settings_env)
    settings_env(SCHEMA_CONTRACT="freeze")
    serve_parquet(data_dir, settings_env, 2025, 6, [1.0])

    ingest_function.handle(message_published_event({"date": JUNE.isoformat(), "service": "yellow"}))

    [letter] = [b for b in dead_letters(expected=1) if b["function"] == "ingest"]
    assert letter["reason"] == "schema_frozen"
    assert (letter["error"]["field"], letter["error"]["value"]) == ("columns", repr([NEW]))
    assert not list(clients.storage().list_blobs(fresh_bucket.name, prefix="trips/"))


def test_loaders_adding_the_same_column_at_once_add_it_once(fresh_bucket, tlc, settings_env, destinations):
    """Four days of the new month loaded at once by both loaders (8 threads released together):
    each adds the column or finds it added; none fails, the column exists once, every day loads."""
    dataset, settings = destinations
    data_dir, _ = tlc
    use_parquet(tlc, settings_env)
    serve_parquet(data_dir, settings_env, 2025, 6, [3.5])
    days = [dt.date(2025, 6, d) for d in (2, 3, 4, 5)]
    for day in days:
        ingest_function.handle(message_published_event({"date": day.isoformat(), "service": "yellow"}))
    blobs = [fresh_bucket.get_blob(paths.trips_object("yellow", day)) for day in days]
    jobs = [(loader, blob) for loader in (load_bigquery, load_postgres) for blob in blobs]
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def deliver(loader, blob) -> None:
        try:
            barrier.wait()
            loader.handle(pubsub_notification_event(blob.bucket.name, blob.name, blob.generation))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors

    names = [f.name for f in clients.bigquery().get_table(f"{dataset}.yellow_trips").schema]
    assert names.count("street_repair_fee") == 1
    manifest = json.loads(fresh_bucket.blob(paths.staging_manifest("yellow", 2025, 6)).download_as_bytes())
    expected = {day.isoformat(): manifest["days"][day.isoformat()]["rows_written"] for day in days}
    sql = (
        f"SELECT CAST(pickup_date AS STRING) AS d, count(*) AS n, countif(street_repair_fee = 3.5) AS v "
        f"FROM `{dataset}.yellow_trips` GROUP BY 1"
    )
    in_bigquery = {r["d"]: (r["n"], r["v"]) for r in clients.bigquery().query(sql).result()}
    assert in_bigquery == {d: (n, n) for d, n in expected.items()}
    schema = settings.pg_schema
    in_postgres = query_pg(
        settings,
        f'SELECT pickup_date::text, count(*), count(street_repair_fee) FROM "{schema}".yellow_trips GROUP BY 1',
    )
    assert {d: (n, v) for d, n, v in in_postgres} == {d: (n, n) for d, n in expected.items()}
    # once in the table (the month partitions inherit it: information_schema lists them as tables too)
    assert query_pg(
        settings,
        "SELECT count(*) FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = 'yellow_trips' AND column_name = 'street_repair_fee'",
        schema,
    ) == [[1]]
