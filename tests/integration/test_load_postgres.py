"""load_postgres against fake-gcs-server, the Pub/Sub emulator and the stack's PostgreSQL.

The entry point is called directly with CloudEvents built as the platform
builds them (both envelopes); each test has its own bucket and its own schema.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import uuid

import pg8000.dbapi
import pyarrow as pa
import pytest

from functions import load_postgres
from shared.core import paths, pg
from shared.core.errors import TransientError
from shared.core.settings import LOAD_POSTGRES, get_settings
from shared.ingest.lake_write import upload_parquet
from shared.load import partition as loading
from shared.load import postgres as postgres_load
from tests.gcs_events import deliver_concurrently, gcs_finalized_event, pubsub_notification_event

DAY = dt.date(2021, 1, 1)
NAME = paths.trips_object("yellow", DAY)
ENVELOPES = (pubsub_notification_event, gcs_finalized_event)


_DB: dict = {}


@pytest.fixture
def pg_schema(fresh_bucket, settings_env):
    schema = f"it_{uuid.uuid4().hex[:10]}"
    settings_env(PG_SCHEMA=schema)
    pg.reset()
    _DB["settings"] = get_settings(LOAD_POSTGRES)  # the test's reads use these even if a test breaks them
    yield schema
    pg.reset()
    with connect() as conn:
        conn.cursor().execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.commit()


class connect:
    """A separate connection for the test's own reads (never the loader's pool)."""

    def __enter__(self):
        s = _DB["settings"]
        self.conn = pg8000.dbapi.connect(
            user=s.pg_user, password=s.pg_password or None, host=s.pg_host, port=s.pg_port, database=s.pg_database
        )
        return self.conn

    def __exit__(self, *exc):
        self.conn.close()


def query(sql: str, *args) -> list:
    with connect() as conn:
        cursor = conn.cursor()
        cursor.execute(sql, args)
        return [list(row) for row in cursor.fetchall()]


def day_count(schema: str, day: dt.date = DAY) -> int:
    return query(f'SELECT count(*) FROM "{schema}".yellow_trips WHERE pickup_date = %s', day)[0][0]


def ledger(schema: str, day: dt.date = DAY) -> tuple | None:
    rows = query(
        f'SELECT generation, rows, object, loaded_at FROM "{schema}".loads '
        "WHERE service = 'yellow' AND pickup_date = %s",
        day,
    )
    return tuple(rows[0]) if rows else None


def upload(bucket, table: pa.Table, day: dt.date = DAY):
    return upload_parquet(bucket, paths.trips_object("yellow", day), table, {"service": "yellow"})


def deliver(blob, envelope=pubsub_notification_event) -> None:
    load_postgres.handle(envelope(blob.bucket.name, blob.name, blob.generation))


def test_load_again_newer_then_older(fresh_bucket, pg_schema, real_day):
    first = upload(fresh_bucket, real_day)
    deliver(first, pubsub_notification_event)
    assert day_count(pg_schema) == 96
    loaded = ledger(pg_schema)
    assert loaded[:3] == (first.generation, 96, f"gs://{fresh_bucket.name}/{NAME}")

    deliver(first, gcs_finalized_event)  # the same generation again, other envelope: nothing changes
    assert day_count(pg_schema) == 96 and ledger(pg_schema) == loaded

    newer = upload(fresh_bucket, real_day.slice(0, 40))  # a new version of the day
    deliver(newer)
    assert day_count(pg_schema) == 40, "replaced, not added"
    assert ledger(pg_schema)[:2] == (newer.generation, 40)

    deliver(first)  # late delivery of the older generation
    assert day_count(pg_schema) == 40 and ledger(pg_schema)[0] == newer.generation


def test_the_ledger_refuses_an_older_generation_even_if_it_got_past_the_lake_check(fresh_bucket, pg_schema, real_day):
    newer = upload(fresh_bucket, real_day.slice(0, 10))
    deliver(newer)
    # Two versions racing: the older one read its bytes before the newer replaced them.
    older = loading.PartitionLoad(
        loading.ObjectEvent(fresh_bucket.name, NAME, newer.generation - 1), paths.parse_partition(NAME)
    )
    settings = get_settings(LOAD_POSTGRES)
    with pg.connection(settings) as conn:
        outcome = postgres_load.replace_day(conn, settings, older, real_day, {})
    assert outcome["skipped"] == "older_generation"
    assert day_count(pg_schema) == 10 and ledger(pg_schema)[0] == newer.generation


def test_same_event_to_concurrent_invocations_loads_the_day_once(fresh_bucket, pg_schema, real_day, capsys):
    big = pa.concat_tables([real_day] * 200)  # 19,200 rows: the invocations really overlap
    blob = upload(fresh_bucket, big)
    assert not deliver_concurrently(deliver, blob, ENVELOPES, invocations=4, timeout=120)
    assert day_count(pg_schema) == big.num_rows
    assert query(f'SELECT count(*) FROM "{pg_schema}".loads')[0][0] == 1
    outcomes = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"function":"load_postgres"' in line
    ]
    assert sorted(o.get("skipped", "loaded") for o in outcomes) == ["already_loaded"] * 3 + ["loaded"]


@pytest.mark.parametrize(
    "bad, reason", [(b"PAR1 this is not parquet PAR1", "corrupt_parquet"), ("drop_column", "schema_mismatch")]
)
def test_bad_partition_is_dead_lettered_and_the_day_stays_intact(
    fresh_bucket, pg_schema, real_day, dead_letters, bad, reason
):
    good = upload(fresh_bucket, real_day)
    deliver(good)
    before = ledger(pg_schema)
    blob = fresh_bucket.blob(NAME)
    if isinstance(bad, bytes):
        blob.upload_from_string(bad)
    else:
        upload_parquet(fresh_bucket, NAME, real_day.drop_columns(["fare_amount"]), {})
        blob = fresh_bucket.get_blob(NAME)
    deliver(blob)  # returns: a permanent error is acked, not retried

    letters = [
        b for b in dead_letters(expected=1) if b["context"].get("object", "").endswith(f"{fresh_bucket.name}/{NAME}")
    ]
    assert len(letters) == 1
    letter = letters[0]
    assert letter["function"] == "load_postgres" and letter["reason"] == reason
    assert letter["context"]["generation"] == blob.generation and letter["context"]["date"] == "2021-01-01"
    assert letter["event"]["attributes"]["type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert day_count(pg_schema) == 96 and ledger(pg_schema) == before


def test_unreachable_database_is_transient_and_retried(fresh_bucket, pg_schema, settings_env, real_day, dead_letters):
    blob = upload(fresh_bucket, real_day)
    settings_env(PG_PORT="1")  # nothing listens there: connection refused
    pg.reset()
    with pytest.raises(TransientError):
        deliver(blob)
    assert dead_letters(expected=1, timeout=3) == []


def test_known_row_round_trips_exactly(fresh_bucket, pg_schema, real_day, real_yellow_sample):
    deliver(upload(fresh_bucket, real_day))
    with open(real_yellow_sample, newline="") as handle:
        source = next(csv.DictReader(handle))
    (row,) = query(
        "SELECT pickup_datetime, dropoff_datetime, pu_location_id, do_location_id, passenger_count, trip_distance,"
        " fare_amount, extra, mta_tax, tip_amount, tolls_amount, improvement_surcharge, total_amount,"
        f' congestion_surcharge, payment_type, store_and_fwd_flag FROM "{pg_schema}".yellow_trips'
        " WHERE pickup_datetime = %s AND pu_location_id = %s",
        dt.datetime.fromisoformat(source["tpep_pickup_datetime"]),
        int(source["PULocationID"]),
    )
    assert row[0] == dt.datetime.fromisoformat(source["tpep_pickup_datetime"])  # naive, not shifted
    assert row[1] == dt.datetime.fromisoformat(source["tpep_dropoff_datetime"])
    assert row[2:5] == [int(source["PULocationID"]), int(source["DOLocationID"]), int(source["passenger_count"])]
    money = [
        "trip_distance",
        "fare_amount",
        "extra",
        "mta_tax",
        "tip_amount",
        "tolls_amount",
        "improvement_surcharge",
        "total_amount",
        "congestion_surcharge",
    ]
    assert row[5:14] == [float(source[name]) for name in money]
    assert row[14:] == [int(source["payment_type"]), source["store_and_fwd_flag"]]
    # and the text PostgreSQL itself prints for the timestamp is the source's
    assert query(f'SELECT pickup_datetime::text FROM "{pg_schema}".yellow_trips ORDER BY pickup_datetime LIMIT 1')[0][
        0
    ] == min(r["tpep_pickup_datetime"] for r in _day_rows(real_yellow_sample))


def _day_rows(path):
    with open(path, newline="") as handle:
        return [
            r
            for r in csv.DictReader(handle)
            if r["tpep_pickup_datetime"].startswith("2021-01-01") and r["passenger_count"] != "0"
        ]


def test_migrations_once_tables_index_and_comments(fresh_bucket, pg_schema, real_day):
    deliver(upload(fresh_bucket, real_day))
    ids = [r[0] for r in query(f'SELECT id FROM "{pg_schema}".schema_migrations ORDER BY id')]
    assert [i for i, _ in postgres_load.migrations(pg_schema)] == ids
    postgres_load._migrated.clear()  # a new process: nothing pending, nothing re-applied
    with pg.connection(get_settings(LOAD_POSTGRES)) as conn:
        assert postgres_load.migrate(conn, pg_schema) == []
    tables = {
        r[0] for r in query("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", pg_schema)
    }
    assert {"yellow_trips", "green_trips", "fhv_trips", "loads", "schema_migrations"} <= tables
    indexes = [
        r[0]
        for r in query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = 'yellow_trips'", pg_schema
        )
    ]
    assert any("(pickup_date)" in i for i in indexes)
    (comment,) = query(
        "SELECT col_description(%s::regclass, attnum) FROM pg_attribute WHERE attrelid = "
        "%s::regclass AND attname = 'payment_type'",
        f"{pg_schema}.yellow_trips",
        f"{pg_schema}.yellow_trips",
    )[0]
    assert "2 = Cash" in comment


def test_a_table_dropped_under_a_warm_instance_is_recreated_on_retry(fresh_bucket, pg_schema, real_day):
    deliver(upload(fresh_bucket, real_day))
    with connect() as conn:
        conn.cursor().execute(f'DROP TABLE "{pg_schema}".yellow_trips')
        conn.commit()
    blob = upload(fresh_bucket, real_day.slice(0, 7))
    with pytest.raises(TransientError):
        deliver(blob)  # the platform retries...
    deliver(blob)  # ...and the retry migrates again
    assert day_count(pg_schema) == 7


def test_a_pooled_connection_killed_since_its_last_use_is_not_lent_again(fresh_bucket, pg_schema, real_day):
    """A server restart or pg_terminate_backend kills idle pooled connections; the next event must
    not fail on one (status once answered 503 right after a Postgres restart)."""
    settings = get_settings(LOAD_POSTGRES)
    with pg.connection(settings) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT pg_backend_pid()")
        first_pid = cursor.fetchall()[0][0]
        conn.rollback()
    assert query("SELECT pg_terminate_backend(%s)", first_pid) == [[True]]

    deliver(upload(fresh_bucket, real_day))  # borrows from the pool: must get a live connection
    assert day_count(pg_schema) == real_day.num_rows
    with pg.connection(settings) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchall()[0][0] != first_pid
        conn.rollback()
