"""Loaders without servers: event routing, staleness, checks, BigQuery job configs, Postgres DDL and CSV.

Events are built the way the platform builds them (tests/gcs_events.py): Eventarc's
direct GCS trigger, and a GCS Pub/Sub notification pushed as messagePublished.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import struct

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.api_core import exceptions as gexc

from shared.core.errors import ConfigError, PermanentError, SourceError, TransientError, ValidationError
from shared.core.schemas import arrow_schema, columns
from shared.core.settings import LOAD_BIGQUERY, Settings, get_settings
from shared.load import bigquery as bql
from shared.load import partition as loading
from shared.load import pg_binary, postgres_ddl
from shared.load import postgres as pgl
from tests.gcs_events import gcs_finalized_event, pubsub_notification_event, real_day_partition

BUCKET = "lake-bucket"
NAME = "trips/yellow/pickup_date=2021-01-15/data.parquet"
DAY = dt.date(2021, 1, 15)
GEN = 1716912345678901
ENV = {"GCP_PROJECT": "proj", "LAKE_BUCKET": BUCKET, "DEAD_LETTER_TOPIC": "dl"}


def settings(**overrides: str) -> Settings:
    return Settings.from_env({**ENV, **overrides}, function=LOAD_BIGQUERY)


def trips_table(rows: int = 3, day: dt.date = DAY) -> pa.Table:
    base = dt.datetime.combine(day, dt.time(0, 30, 10))
    data = {}
    for column in columns("yellow"):
        if column.kind == "int":
            data[column.name] = pa.array(range(1, rows + 1), pa.int64())
        elif column.kind == "float":
            data[column.name] = pa.array([0.3 * (i + 1) for i in range(rows)], pa.float64())
        elif column.kind == "string":
            data[column.name] = pa.array(["N", "", None][:rows] + ["Y"] * max(0, rows - 3), pa.string())
        elif column.kind == "timestamp":
            data[column.name] = pa.array(
                [base + dt.timedelta(seconds=i, microseconds=123456 * i) for i in range(rows)], pa.timestamp("us")
            )
        else:
            data[column.name] = pa.array([day] * rows, pa.date32())
    return pa.table(data, schema=arrow_schema("yellow"))


def parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


LOAD = loading.PartitionLoad(loading.ObjectEvent(BUCKET, NAME, GEN), loading.paths.Partition("trips", "yellow", DAY))


# ---- event routing -------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [gcs_finalized_event, pubsub_notification_event])
def test_both_envelopes_resolve_to_the_same_partition(build):
    load, ignored = loading.resolve(build(BUCKET, NAME, GEN), settings())
    assert ignored == {}
    assert (load.service, load.date, load.generation, load.uri) == ("yellow", DAY, GEN, f"gs://{BUCKET}/{NAME}")
    assert load.fields() == {
        "service": "yellow",
        "date": "2021-01-15",
        "object": f"gs://{BUCKET}/{NAME}",
        "generation": GEN,
    }


@pytest.mark.parametrize(
    "event, reason",
    [
        (pubsub_notification_event(BUCKET, NAME, GEN, event_type="OBJECT_DELETE"), "not_finalize"),
        (pubsub_notification_event(BUCKET, NAME, GEN, event_type="OBJECT_METADATA_UPDATE"), "not_finalize"),
        (gcs_finalized_event(BUCKET, "rejects/yellow/pickup_date=2021-01-15/data.parquet", GEN), "not_trips"),
        (gcs_finalized_event(BUCKET, "staging/yellow/month=2021-01/clean.parquet", GEN), "not_trips"),
        (gcs_finalized_event("another-bucket", NAME, GEN), "other_bucket"),
    ],
)
def test_other_events_are_ignored_with_a_reason(event, reason):
    load, ignored = loading.resolve(event, settings())
    assert load is None and ignored["ignored"] == reason and ignored["message"].startswith("event ignored")


@pytest.mark.parametrize(
    "event",
    [
        pubsub_notification_event(BUCKET, "trips/yellow/pickup_date=2021-02-30/data.parquet", GEN),
        pubsub_notification_event(BUCKET, "trips/blue/pickup_date=2021-01-15/data.parquet", GEN),
        gcs_finalized_event(BUCKET, "trips/yellow/pickup_date=2021-01-15/other.csv", GEN),
        gcs_finalized_event(BUCKET, "trips/yellow/pickup_date=2021-13-01/data.parquet", GEN),
    ],
)
def test_a_name_under_trips_that_is_no_partition_is_invalid_not_ignored(event):
    """They were ignored at INFO: a mistaken object in the loaders' namespace went unnoticed."""
    with pytest.raises(ValidationError) as caught:
        loading.resolve(event, settings())
    assert caught.value.field == "name" and caught.value.value.startswith("trips/")


def test_a_finalize_without_generation_is_invalid():
    event = gcs_finalized_event(BUCKET, NAME, GEN)
    event.data["generation"] = "abc"
    with pytest.raises(PermanentError):
        loading.resolve(event, settings())


def test_entry_points_log_ignored_events_at_info_without_touching_any_client(monkeypatch, capsys):
    from functions import load_bigquery, load_postgres
    from shared.core import clients

    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    clients.reset()
    monkeypatch.setattr(clients, "storage", lambda: pytest.fail("storage must not be used"))
    monkeypatch.setattr(clients, "bigquery", lambda: pytest.fail("bigquery must not be used"))
    try:
        load_bigquery.handle(gcs_finalized_event(BUCKET, "rejects/yellow/pickup_date=2021-01-15/data.parquet", GEN))
        load_postgres.handle(pubsub_notification_event(BUCKET, NAME, GEN, event_type="OBJECT_DELETE"))
    finally:
        get_settings.cache_clear()  # the env is monkeypatched: forget settings parsed from it
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["severity"], e["function"], e["ignored"]) for e in lines] == [
        ("INFO", "load_bigquery", "not_trips"),
        ("INFO", "load_postgres", "not_finalize"),
    ]


# ---- staleness and reading -----------------------------------------------------------------------


def test_staleness_compares_the_live_generation():
    assert loading.stale_reason(LOAD, GEN) is None
    assert "deleted" in loading.stale_reason(LOAD, None)
    assert "replaced" in loading.stale_reason(LOAD, GEN + 1)
    assert "replaced" in loading.stale_reason(LOAD, GEN - 1)


class FakeBlob:
    def __init__(self, store: dict, name: str, generation: int | None = None):
        self.store, self.name, self.generation = store, name, generation

    def download_as_bytes(self):
        live = self.store.get(self.name)
        if live is None or live[0] != self.generation:
            raise gexc.NotFound("gone")
        return live[1]


class FakeBucket:
    def __init__(self, store: dict):
        self.store = store

    def get_blob(self, name):
        return FakeBlob(self.store, name, self.store[name][0]) if name in self.store else None

    def blob(self, name, generation=None):
        return FakeBlob(self.store, name, generation)


class FakeStorage:
    def __init__(self, store):
        self.store = store

    def bucket(self, name):
        assert name == BUCKET
        return FakeBucket(self.store)


def test_run_load_dead_letters_an_event_for_an_object_that_does_not_exist(monkeypatch):
    """Was skipped as stale at INFO; nothing deletes a partition, so the event is wrong: permanent."""
    monkeypatch.setattr(loading.clients, "storage", lambda: FakeStorage({}))
    with pytest.raises(PermanentError) as caught:
        loading.run_load(
            gcs_finalized_event(BUCKET, NAME, GEN),
            settings(),
            lambda *a: pytest.fail("a missing object must not be loaded"),
        )
    assert (caught.value.reason, caught.value.field, caught.value.value) == ("object_not_found", "name", NAME)


@pytest.mark.parametrize("live, reason", [(GEN + 5, "replaced")])
def test_run_load_skips_stale_events_without_calling_the_loader(monkeypatch, live, reason):
    store = {NAME: (live, parquet(trips_table()))}
    monkeypatch.setattr(loading.clients, "storage", lambda: FakeStorage(store))
    outcome = loading.run_load(
        gcs_finalized_event(BUCKET, NAME, GEN), settings(), lambda *a: pytest.fail("a stale event must not be loaded")
    )
    assert outcome["skipped"] == "stale" and reason in outcome["message"] and outcome["rows"] == 0


def test_run_load_passes_the_checked_table_and_bytes(monkeypatch):
    data = parquet(trips_table())
    monkeypatch.setattr(loading.clients, "storage", lambda: FakeStorage({NAME: (GEN, data)}))
    seen = {}

    def loader(load, partition, settings_, timings):
        seen.update(load=load, partition=partition)
        return {"message": "done"}

    outcome = loading.run_load(pubsub_notification_event(BUCKET, NAME, GEN), settings(), loader)
    assert seen["partition"].parquet == data and seen["partition"].table.num_rows == 3
    assert outcome["rows"] == 3 and outcome["generation"] == GEN and outcome["message"] == "done"


def test_corrupt_parquet_is_permanent_and_names_the_partition(monkeypatch):
    monkeypatch.setattr(loading.clients, "storage", lambda: FakeStorage({NAME: (GEN, b"PAR1 not parquet")}))
    with pytest.raises(SourceError) as err:
        loading.run_load(gcs_finalized_event(BUCKET, NAME, GEN), settings(), lambda *a: pytest.fail())
    assert err.value.reason == "corrupt_parquet"
    assert err.value.details["context"]["date"] == "2021-01-15"


def test_loader_errors_leave_classified_with_context(monkeypatch):
    monkeypatch.setattr(loading.clients, "storage", lambda: FakeStorage({NAME: (GEN, parquet(trips_table()))}))

    def loader(*args):
        raise ConnectionRefusedError("refused")

    with pytest.raises(TransientError) as err:
        loading.run_load(gcs_finalized_event(BUCKET, NAME, GEN), settings(), loader)
    assert err.value.details["context"]["generation"] == GEN


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda t: t.drop_columns(["airport_fee"]), "schema_mismatch"),
        (lambda t: t.set_column(0, "vendor_id", t["vendor_id"].cast(pa.string())), "schema_mismatch"),
        (lambda t: t.append_column("extra_col", pa.array([1, 2, 3])), "schema_mismatch"),
        (lambda t: t.select(list(reversed(t.column_names))), "schema_mismatch"),
        (lambda t: trips_table(day=DAY + dt.timedelta(days=1)), "date_mismatch"),
    ],
)
def test_decode_rejects_what_the_destinations_would_not_hold(mutate, reason):
    with pytest.raises(SourceError) as err:
        loading.decode(LOAD, parquet(mutate(trips_table())))
    assert err.value.reason == reason


def test_decode_accepts_an_empty_day():
    assert loading.decode(LOAD, parquet(trips_table(0))).num_rows == 0


# ---- BigQuery ------------------------------------------------------------------------------------


def test_table_definition_partitioning_clustering_descriptions_and_expiration():
    table = bql.table_definition(settings(BQ_PARTITION_EXPIRATION_DAYS="30"), "yellow")
    assert table.reference.path.endswith("/datasets/nyc_taxi/tables/yellow_trips")
    assert table.time_partitioning.type_ == "DAY" and table.time_partitioning.field == "pickup_date"
    assert table.time_partitioning.expiration_ms == 30 * 86_400_000
    assert table.clustering_fields == ["pu_location_id", "do_location_id"]
    by_name = {f.name: f for f in table.schema}
    assert by_name["pickup_datetime"].field_type == "DATETIME"
    assert "2 = Cash" in by_name["payment_type"].description
    assert all(f.description for f in table.schema)
    assert bql.table_definition(settings(), "yellow").time_partitioning.expiration_ms is None


def test_job_ids_are_deterministic_valid_and_distinct_per_generation():
    first = bql.job_id("load", "proj.nyc_taxi.yellow_trips", DAY, GEN)
    assert first == bql.job_id("load", "proj.nyc_taxi.yellow_trips", DAY, GEN)
    assert first == f"load_proj_nyc_taxi_yellow_trips_20210115_g{GEN}"
    assert first != bql.job_id("load", "proj.nyc_taxi.yellow_trips", DAY, GEN + 1)
    assert first != bql.job_id("load", "proj.nyc_taxi.yellow_trips", DAY + dt.timedelta(days=1), GEN)
    long = bql.job_id("load", "p." + "x" * 900, DAY, GEN)
    assert len(long) < 1024 and set(long) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


class LoaderAccountBigQuery:
    """What Google answers the deployed load_bigquery account (roles/bigquery.dataEditor on the
    dataset, jobUser on the project): creating any dataset is checked on the PROJECT, before the
    dataset's existence, so `create_dataset(exists_ok=True)` is a 403 even when it exists."""

    def __init__(self):
        self.calls: list[str] = []

    def create_dataset(self, dataset, exists_ok=False):
        self.calls.append("create_dataset")
        raise gexc.Forbidden(
            "Access Denied: Project proj: User does not have bigquery.datasets.create permission in project proj.",
            errors=[{"reason": "accessDenied"}],
        )

    def create_table(self, table, exists_ok=False):
        self.calls.append("create_table")
        return table

    def update_table(self, table, fields):
        self.calls.append("update_table")
        return table


def test_ensure_table_needs_no_project_permission_the_loader_lacks():
    """The dataset is Terraform's (bigquery.tf); the loader only creates its tables in it."""
    bql._ensured.clear()
    client = LoaderAccountBigQuery()
    bql.ensure_table(client, settings(), "yellow")
    assert client.calls == ["create_table"]
    bql._ensured.clear()


class FakeJob:
    def __init__(self, job_id, error=None, output_rows=3):
        self.job_id, self.error, self.output_rows = job_id, error, output_rows

    def result(self, timeout=None):
        if self.error:
            raise self.error
        return self


class FakeBigQuery:
    """Jobs only: the loader's one request is a load job (unit tests; the integration tests run it
    against the emulator behind the stack's BigQuery bridge)."""

    def __init__(self, existing=None):
        self.calls, self.existing = [], existing or {}

    def _job(self, job_id, error=None):
        if job_id in self.existing:
            raise gexc.Conflict(f"Already Exists: Job {job_id}")
        return FakeJob(job_id, error)

    def load_table_from_uri(self, uri, destination, job_id, job_config):
        self.calls.append(("load_uri", uri, destination, job_id, job_config))
        return self._job(job_id)

    def get_job(self, job_id):
        self.calls.append(("get_job", job_id))
        return self.existing[job_id]


def test_partition_decorator_truncates_the_days_partition_from_the_gs_uri():
    client = FakeBigQuery()
    result = bql.replace_by_decorator(client, settings(), LOAD, loading.PartitionData(trips_table(), b""))
    ((kind, uri, destination, job_id, config),) = client.calls
    assert (kind, uri, destination) == ("load_uri", f"gs://{BUCKET}/{NAME}", "proj.nyc_taxi.yellow_trips$20210115")
    assert job_id == f"load_proj_nyc_taxi_yellow_trips_20210115_g{GEN}" == result["job_id"]
    api = config.to_api_repr()["load"]
    assert api["sourceFormat"] == "PARQUET" and api["writeDisposition"] == "WRITE_TRUNCATE"
    assert api["createDisposition"] == "CREATE_NEVER"
    assert [f["name"] for f in api["schema"]["fields"]] == [c.name for c in columns("yellow")]
    assert all(f.get("description") for f in api["schema"]["fields"])
    assert config.labels["generation"] == str(GEN)


def test_a_409_for_the_job_id_waits_for_that_job_and_counts_as_done():
    job_id = f"load_proj_nyc_taxi_yellow_trips_20210115_g{GEN}"
    client = FakeBigQuery(existing={job_id: FakeJob(job_id)})
    result = bql.replace_by_decorator(client, settings(), LOAD, loading.PartitionData(trips_table(), b""))
    assert result["job_id"] == job_id and [c[0] for c in client.calls] == ["load_uri", "get_job"]


def test_a_409_for_a_job_that_failed_runs_again_under_a_fresh_id():
    job_id = f"load_proj_nyc_taxi_yellow_trips_20210115_g{GEN}"
    client = FakeBigQuery(existing={job_id: FakeJob(job_id, gexc.InternalServerError("backendError"))})
    result = bql.replace_by_decorator(client, settings(), LOAD, loading.PartitionData(trips_table(), b""))
    assert result["job_id"].startswith(job_id + "_r") and [c[0] for c in client.calls] == [
        "load_uri",
        "get_job",
        "load_uri",
    ]


@pytest.mark.parametrize(
    "exc, transient",
    [
        (gexc.InternalServerError("x", errors=[{"reason": "backendError"}]), True),
        (gexc.Forbidden("x", errors=[{"reason": "rateLimitExceeded"}]), True),
        (gexc.TooManyRequests("x", errors=[{"reason": "rateLimitExceeded"}]), True),
        (gexc.ServiceUnavailable("x"), True),
        (gexc.BadRequest("Transaction is aborted due to concurrent update against table t"), True),
        (gexc.BadRequest("x", errors=[{"reason": "invalid"}]), False),
        (gexc.BadRequest("Provided Schema does not match Table", errors=[{"reason": "invalid"}]), False),
        (gexc.Forbidden("x", errors=[{"reason": "accessDenied"}]), False),
        (ConnectionResetError("reset"), True),
    ],
)
def test_bigquery_errors_are_split_by_reason(exc, transient):
    assert isinstance(bql.translate(exc), TransientError if transient else PermanentError)


# ---- PostgreSQL ----------------------------------------------------------------------------------


def test_table_ddl_uses_the_one_schema_is_partitioned_by_month_and_indexes_pickup_date():
    create, index = pgl.create_table_sql("ny_taxi", "yellow")
    assert create.startswith('CREATE TABLE IF NOT EXISTS "ny_taxi"."yellow_trips" (')
    assert create.endswith(") PARTITION BY RANGE (pickup_date)")
    assert '"pickup_datetime" timestamp without time zone' in create and '"fare_amount" double precision' in create
    assert create.count("\n  ") == len(columns("yellow"))
    assert index == (
        'CREATE INDEX IF NOT EXISTS "yellow_trips_pickup_date_idx" ON "ny_taxi"."yellow_trips" (pickup_date)'
    )


def test_comments_carry_the_data_dictionary_with_quotes_escaped():
    statements = pgl.comment_sql("ny_taxi", "green")
    assert len(statements) == len(columns("green")) + 1
    trip_type = next(s for s in statements if '."trip_type" IS' in s)
    assert trip_type.startswith('COMMENT ON COLUMN "ny_taxi"."green_trips"."trip_type" IS \'1 = Street-hail')
    assert postgres_ddl.literal("it's") == "'it''s'"


@pytest.mark.parametrize(
    "day, name, bounds",
    [
        (dt.date(2021, 1, 15), "yellow_trips_p202101", "FROM ('2021-01-01') TO ('2021-02-01')"),
        (dt.date(2020, 12, 31), "yellow_trips_p202012", "FROM ('2020-12-01') TO ('2021-01-01')"),
        (dt.date(2024, 2, 29), "yellow_trips_p202402", "FROM ('2024-02-01') TO ('2024-03-01')"),
    ],
)
def test_a_day_belongs_to_its_month_partition(day, name, bounds):
    create, attach = postgres_ddl.create_partition_sql("ny_taxi", "yellow", day)
    assert create.startswith(f'CREATE TABLE IF NOT EXISTS "ny_taxi"."{name}" (LIKE "ny_taxi"."yellow_trips" ')
    assert attach == f'ALTER TABLE "ny_taxi"."yellow_trips" ATTACH PARTITION "ny_taxi"."{name}" FOR VALUES {bounds}'
    assert postgres_ddl.copy_sql("ny_taxi", "yellow", day).startswith(f'COPY "ny_taxi"."{name}" ("vendor_id", ')


def test_ledger_is_the_table_the_status_module_reads():
    create = pgl.ledger_sql("ny_taxi")[0]
    for column in (
        "service text",
        "pickup_date date",
        "generation bigint",
        "rows bigint",
        "object text",
        "loaded_at timestamptz NOT NULL DEFAULT now()",
        "PRIMARY KEY (service, pickup_date)",
    ):
        assert column in create
    assert create.startswith('CREATE TABLE IF NOT EXISTS "ny_taxi".loads (')


def test_migrations_are_ordered_and_idempotent_and_comments_follow_descriptions(monkeypatch):
    steps = pgl.migrations("ny_taxi")
    ids = [i for i, _ in steps]
    assert ids == sorted(ids) and ids[0] == "0001_ledger"
    for migration_id, statements in steps:
        for sql in statements:
            if migration_id == "0004_partition_by_month":  # functions of the cursor: checked against PostgreSQL
                assert callable(sql)
                continue
            assert sql.startswith(
                ("CREATE TABLE IF NOT EXISTS", "CREATE INDEX IF NOT EXISTS", "COMMENT ON", "ALTER TABLE")
            )
            assert not sql.startswith("ALTER TABLE") or " ADD COLUMN IF NOT EXISTS " in sql
    from shared.core import schemas

    edited = tuple(
        c if c.name != "extra" else schemas.Column(c.name, c.kind, "changed", c.sources) for c in schemas.YELLOW
    )
    monkeypatch.setitem(schemas.SCHEMAS, "yellow", edited)
    assert [i for i, _ in pgl.migrations("ny_taxi")] != ids


@pytest.mark.parametrize("name", ["ny-taxi", 'x"; drop table y; --', "Upper", "", "1abc"])
def test_identifiers_from_settings_are_checked(name):
    with pytest.raises(ConfigError):
        pgl.ident(name)


def decode_binary_copy(stream: bytes, schema: list) -> list[list]:
    """PostgreSQL's binary COPY format read back field by field, as the server's recv functions do."""
    assert stream[:19] == pg_binary.HEADER and stream[-2:] == b"\xff\xff"
    pos, rows = 19, []
    while pos < len(stream) - 2:
        (count,) = struct.unpack_from(">h", stream, pos)
        assert count == len(schema)
        pos += 2
        row = []
        for column in schema:
            (length,) = struct.unpack_from(">i", stream, pos)
            pos += 4
            if length == -1:
                row.append(None)
                continue
            raw = stream[pos : pos + length]
            pos += length
            if column.kind == "string":
                row.append(raw.decode())
            elif column.kind == "float":
                row.append(struct.unpack(">d", raw)[0])
            elif column.kind == "int":
                row.append(struct.unpack(">q", raw)[0])
            elif column.kind == "timestamp":
                row.append(dt.datetime(2000, 1, 1) + dt.timedelta(microseconds=struct.unpack(">q", raw)[0]))
            else:
                row.append(dt.date(2000, 1, 1) + dt.timedelta(days=struct.unpack(">i", raw)[0]))
        rows.append(row)
    assert pos == len(stream) - 2
    return rows


def same_rows(got: list[list], want: list[list]) -> bool:
    """Equal as multisets of rows."""
    return len(got) == len(want) and sorted(map(repr, got)) == sorted(map(repr, want))


def test_binary_copy_keeps_nulls_empty_strings_timestamps_floats_and_dates_exact():
    schema = list(columns("yellow"))
    table = trips_table(3)
    table = table.set_column(
        table.schema.get_field_index("fare_amount"),
        "fare_amount",
        pa.array([0.1 + 0.2, None, float("-inf")], pa.float64()),
    )
    table = table.set_column(
        table.schema.get_field_index("store_and_fwd_flag"), "store_and_fwd_flag", pa.array(["N", "", None])
    )
    table = table.set_column(table.schema.get_field_index("vendor_id"), "vendor_id", pa.array([None, -7, 2**62]))
    old = dt.datetime(1999, 12, 31, 23, 59, 59, 999999)  # before PostgreSQL's epoch: a negative count
    table = table.set_column(
        table.schema.get_field_index("dropoff_datetime"),
        "dropoff_datetime",
        pa.array([old, None, dt.datetime(2038, 1, 19, 3, 14, 8)], pa.timestamp("us")),
    )
    stream = b"".join(bytes(c) for c in pg_binary.copy_chunks(table, schema, 2))
    assert same_rows(decode_binary_copy(stream, schema), [list(row.values()) for row in table.to_pylist()])
    # rows of one layout are one record array; mixed layouts are grouped (a COPY's rows have no order)
    uniform = pa.concat_tables([trips_table(1)] * 5)
    assert pg_binary._layout_keys(uniform, schema) is None
    assert pg_binary._layout_keys(table, schema) is not None


def test_binary_copy_of_text_is_utf8_behind_its_byte_length():
    schema = [c for c in columns("fhv") if c.kind == "string"][:1]
    name = schema[0].name
    table = pa.table({name: pa.array(["B02510", "Zoë ☕", "", None, 'say "hi", \\N'])})
    stream = b"".join(bytes(c) for c in pg_binary.copy_chunks(table, schema, 8192))
    assert same_rows(decode_binary_copy(stream, schema), [[v] for v in table[name].to_pylist()])


def test_binary_copy_is_sent_in_large_chunks():
    table = pa.concat_tables([trips_table(3)] * 20000)
    chunks = list(pg_binary.copy_chunks(table, list(columns("yellow")), pgl.COPY_ROWS))
    assert len(chunks) == -(-table.num_rows // pgl.COPY_ROWS) + 2  # + header + trailer
    got = decode_binary_copy(b"".join(bytes(c) for c in chunks), list(columns("yellow")))
    assert same_rows(got, [list(row.values()) for row in table.to_pylist()])


def test_copy_statement_names_every_column_in_order_into_the_month_partition():
    sql = pgl.copy_sql("ny_taxi", "fhv", dt.date(2019, 3, 9))
    assert sql.startswith('COPY "ny_taxi"."fhv_trips_p201903" ("dispatching_base_num", "pickup_datetime"')
    assert sql.endswith("FROM STDIN WITH (FORMAT binary)")


def test_real_sample_builds_a_partition_of_the_trips_schema(real_yellow_sample):
    trips = real_day_partition(real_yellow_sample)
    assert trips.num_rows == 96 and trips.schema.equals(arrow_schema("yellow"))
    load = loading.PartitionLoad(LOAD.event, loading.paths.Partition("trips", "yellow", dt.date(2021, 1, 1)))
    assert loading.decode(load, parquet(trips)).num_rows == 96
