"""The schema contract (shared/ingest/schema_contract.py): each mode on plain names and types, and
through the month split on a yellow 2025 parquet with a column TLC may add next."""

import datetime as dt
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.api_core.exceptions import PreconditionFailed
from google.cloud import bigquery as bq

from local.tlc_columns import to_parquet_types
from local.tlc_data import generate_month
from shared.core.errors import PermanentError, SourceError
from shared.core.evolved_columns import META_FIRST_MONTH, META_SOURCE, describe, extra_fields, lake_field
from shared.core.schemas import arrow_schema, columns
from shared.core.settings import LOAD_BIGQUERY, Settings
from shared.ingest.cleaning import Rules, check_partition, reason_counts
from shared.ingest.lake import split_month
from shared.ingest.schema_contract import MAX_NEW_COLUMNS, kind_of, plan_columns, snake_case
from shared.load import bigquery as bql

YELLOW = [s for c in columns("yellow") if c.sources for s in c.sources[:1]]
NEW = "Street_Repair_Fee"  # a column TLC may add next, as cbd_congestion_fee came in 2025


@pytest.mark.parametrize(
    "source, clean",
    [
        ("CBD_Congestion_Fee", "cbd_congestion_fee"),
        ("Airport_fee", "airport_fee"),
        ("PULocationID", "pu_location_id"),
        ("streetRepairFee", "street_repair_fee"),
        (" Fee (USD) ", "fee_usd"),
    ],
)
def test_snake_case(source, clean):
    assert snake_case(source) == clean


@pytest.mark.parametrize(
    "arrow_type, kind",
    [
        (pa.int64(), "float"),  # TLC writes one count as int64 one month and double the next: one type
        (pa.float64(), "float"),
        (pa.int32(), "float"),
        (pa.bool_(), "float"),
        (pa.decimal128(10, 2), "float"),
        (pa.null(), "float"),
        (pa.string(), "string"),
        (pa.large_string(), "string"),
        (pa.timestamp("us"), "timestamp"),
        (pa.timestamp("ns"), "timestamp"),
        (pa.date32(), "date"),
        (pa.timestamp("us", tz="UTC"), None),
        (pa.list_(pa.int64()), None),
        (pa.binary(), None),
    ],
)
def test_kind_of_a_new_parquet_column(arrow_type, kind):
    assert kind_of(arrow_type) == kind


def test_a_new_csv_column_is_text():
    plan = plan_columns("yellow", [*YELLOW, NEW], "evolve")
    assert [(c.name, c.kind) for c in plan.added] == [("street_repair_fee", "string")]


def test_evolve_adds_a_valid_new_column_and_records_it():
    plan = plan_columns("yellow", [*YELLOW, NEW], "evolve", {NEW: pa.float64()})
    assert [(c.source, c.name, c.kind) for c in plan.added] == [(NEW, "street_repair_fee", "float")]
    record = plan.manifest()
    assert record["mode"] == "evolve" and record["missing_columns"] == []
    assert record["new_columns"] == [{"source": NEW, "name": "street_repair_fee", "kind": "float", "action": "added"}]


@pytest.mark.parametrize("mode, action", [("discard_value", "discarded"), ("discard_row", "rows_rejected")])
def test_discard_modes_add_nothing_and_record_the_column(mode, action):
    plan = plan_columns("yellow", [*YELLOW, NEW], mode, {NEW: pa.float64()})
    assert plan.added == ()
    assert plan.manifest(rows_rejected=3)["new_columns"][0]["action"] == action
    assert ("rows_rejected" in plan.manifest(3)) == (mode == "discard_row")


def test_freeze_fails_naming_the_column():
    with pytest.raises(SourceError) as err:
        plan_columns("yellow", [*YELLOW, NEW], "freeze", {NEW: pa.float64()})
    assert err.value.reason == "schema_frozen" and err.value.field == "columns" and err.value.value == [NEW]
    assert NEW in err.value.message
    assert plan_columns("yellow", YELLOW, "freeze").new == ()  # no new column: freeze loads as always


@pytest.mark.parametrize(
    "source, why",
    [
        ("2nd_fee", "not a safe identifier"),
        ("Fare Amount!", "already a column"),  # fare_amount: never a second one
        ("reject_reason", "already a column"),
        ("x" * 64, "not a safe identifier"),  # over PostgreSQL's 63
        ("'; DROP TABLE x; --", "not a safe identifier"),  # becomes drop_table_x: still safe, see below
        ("€€€", "not a safe identifier"),
    ],
)
def test_unsafe_or_taken_names_never_reach_ddl(source, why):
    plan = plan_columns("yellow", [*YELLOW, source], "evolve", {source: pa.float64()})
    if source.startswith("'"):  # punctuation is dropped: the clean name is a plain identifier
        assert [c.name for c in plan.added] == ["drop_table_x"]
        return
    assert plan.added == () and why in (plan.new[0].problem or "")
    assert plan.manifest()["new_columns"][0]["action"] == "discarded"


def test_an_unsupported_type_is_dropped_and_recorded():
    plan = plan_columns("yellow", [*YELLOW, "tags"], "evolve", {"tags": pa.list_(pa.string())})
    assert plan.added == () and "cannot be kept" in plan.new[0].problem


def test_a_declared_column_that_disappears_is_null_and_recorded():
    names = [n for n in YELLOW if n != "extra"]
    plan = plan_columns("yellow", names, "freeze")
    assert plan.missing == ("extra",) and "extra" not in plan.mapping
    assert plan.manifest()["missing_columns"] == ["extra"]


@pytest.mark.parametrize(
    "names",
    [
        [n for n in YELLOW if n != "tpep_pickup_datetime"],  # the pickup time: a row fits no day
        YELLOW[:5],  # most declared columns gone: not a yellow file
        ["<html>"],
        [*YELLOW, *(f"c{i}" for i in range(MAX_NEW_COLUMNS + 1))],
    ],
)
def test_a_file_that_is_not_this_service_is_wrong_schema_in_every_mode(names):
    for mode in ("evolve", "discard_value", "discard_row", "freeze"):
        with pytest.raises(SourceError) as err:
            plan_columns("yellow", names, mode)
        assert err.value.reason == "wrong_schema"


def yellow_2025(new_values: list | None, rows: int = 60, **more: pa.Array) -> bytes:
    table = to_parquet_types(generate_month("yellow", 2025, 6, rows=rows, seed=4, quirks=False))
    if new_values is not None:
        table = table.append_column(NEW, pa.array(new_values, pa.float64()))
    for name, values in more.items():
        table = table.set_column(table.schema.get_field_index(name), name, values)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def split(data: bytes, mode: str, fmt: str = "parquet"):
    return split_month(io.BytesIO(data), fmt, "yellow", 2025, 6, Rules(schema_contract=mode))


def all_trips(result) -> pa.Table:
    return pa.concat_tables(t for t in (result.tables(d)[0] for d in result.days) if t is not None and t.num_rows)


def test_split_evolve_carries_the_new_column_with_its_origin():
    values = [float(i % 5) if i % 4 else None for i in range(60)]
    result = split(yellow_2025(values), "evolve")
    trips = all_trips(result)
    field = trips.schema.field("street_repair_fee")
    assert (
        field.type == pa.float64() and trips.schema.names[: len(arrow_schema("yellow"))] == arrow_schema("yellow").names
    )
    assert field.metadata[META_SOURCE] == NEW.encode() and field.metadata[META_FIRST_MONTH] == b"2025-06"
    kept = sum(r.rows_written for r in result.days.values())
    assert trips.num_rows == kept and trips["street_repair_fee"].null_count < kept  # values kept
    assert result.contract["new_columns"][0]["action"] == "added"
    assert extra_fields(trips.schema, "yellow") == [field]
    assert "2025-06" in describe(field, "yellow") and NEW in describe(field, "yellow")
    day = next(d for d, r in result.days.items() if r.rows_written)
    check_partition(result.tables(day)[0], "yellow", day, Rules(), result.days[day].rows_read)


def test_split_discard_value_drops_the_column_and_keeps_the_rows():
    result = split(yellow_2025([1.0] * 60), "discard_value")
    trips = all_trips(result)
    assert trips.schema.equals(arrow_schema("yellow"), check_metadata=False)
    assert result.contract["new_columns"][0]["action"] == "discarded"
    plain = split(yellow_2025(None), "evolve")
    assert [r.counts() for r in result.days.values()] == [r.counts() for r in plain.days.values()]


def test_split_discard_row_rejects_only_rows_with_a_value():
    values = [2.5 if i % 3 == 0 else None for i in range(60)]
    plain = split(yellow_2025(None), "evolve")
    result = split(yellow_2025(values), "discard_row")
    rejected = sum(r.rejected_by_reason.get("unexpected_column", 0) for r in result.days.values())
    assert rejected > 0 and result.contract["rows_rejected"] == rejected
    written = sum(r.rows_written for r in result.days.values())
    plain_written = sum(r.rows_written for r in plain.days.values())
    # rows without a value are kept as before; a row with one is rejected first, even if another rule would too
    assert written < plain_written <= written + rejected
    assert sum(r.rows_read for r in result.days.values()) == sum(r.rows_read for r in plain.days.values())
    assert all_trips(result).schema.equals(arrow_schema("yellow"), check_metadata=False)
    rejects = pa.concat_tables(t for t in (result.tables(d)[1] for d in result.days) if t is not None)
    assert reason_counts(rejects["reject_reason"])["unexpected_column"] == rejected


def test_split_freeze_fails_the_month_naming_the_column():
    with pytest.raises(SourceError) as err:
        split(yellow_2025([1.0] * 60), "freeze")
    assert err.value.reason == "schema_frozen" and err.value.value == [NEW]


def test_split_types_that_drift_between_files_are_cast_to_the_declared_type():
    """passenger_count int64 in one file, double in the next (TLC did both): one declared int64."""
    as_int = yellow_2025(None, passenger_count=pa.array([1] * 60, pa.int64()))
    as_float = yellow_2025(None, passenger_count=pa.array([1.0] * 60, pa.float64()))
    for data in (as_int, as_float):
        trips = all_trips(split(data, "freeze"))
        assert trips.schema.field("passenger_count").type == pa.int64() and set(
            trips["passenger_count"].to_pylist()
        ) == {1}


def test_split_a_declared_column_that_disappears_is_null():
    table = pq.read_table(io.BytesIO(yellow_2025(None))).drop_columns(["extra"])
    sink = io.BytesIO()
    pq.write_table(table, sink)
    result = split(sink.getvalue(), "freeze")
    trips = all_trips(result)
    assert trips["extra"].null_count == trips.num_rows > 0 and result.contract["missing_columns"] == ["extra"]


def test_split_a_new_csv_column_is_text_as_written():
    csv = (
        b"VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,"
        b"store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,"
        b"tolls_amount,improvement_surcharge,total_amount,congestion_surcharge,Street_Repair_Fee\n"
        b"1,2025-06-01 00:30:10,2025-06-01 00:36:12,1,2.10,1,N,142,43,2,8,3,0.5,0,0,0.3,11.8,2.5,1.50\n"
        b"1,2025-06-01 01:30:10,2025-06-01 01:36:12,1,2.10,1,N,142,43,2,8,3,0.5,0,0,0.3,11.8,2.5,\n"
    )
    result = split(csv, "evolve", fmt="csv")
    trips = result.tables(dt.date(2025, 6, 1))[0]
    assert trips["street_repair_fee"].to_pylist() == ["1.50", None]


class _Table:
    def __init__(self, schema):
        self.schema = list(schema)


class _RacingClient:
    """tables.get / tables.patch of one table; the first patch loses to another loader (412)."""

    def __init__(self, schema, other_adds):
        self.table, self.other_adds, self.patches = _Table(schema), other_adds, 0

    def get_table(self, _tid):
        return _Table(self.table.schema)

    def update_table(self, table, fields):
        self.patches += 1
        if self.patches == 1:  # another loader patched first: the etag read no longer matches
            self.table.schema = [*self.table.schema, *self.other_adds]
            raise PreconditionFailed("412 Precondition check failed.")
        self.table.schema = list(table.schema)
        return _Table(self.table.schema)


def _settings():
    return Settings.from_env({"GCP_PROJECT": "p", "LAKE_BUCKET": "b", "DEAD_LETTER_TOPIC": "d"}, LOAD_BIGQUERY)


def test_bigquery_add_columns_reads_again_after_a_412_and_adds_once():
    declared = bql.schema_fields("yellow")
    ours = lake_field("street_repair_fee", "float", NEW, 2025, 6)
    theirs = bq.SchemaField("tunnel_fee", "FLOAT64", mode="NULLABLE")
    client = _RacingClient(declared, [theirs])
    schema = bql.add_columns(client, _settings(), "yellow", [ours])
    names = [f.name for f in schema]
    assert names[-2:] == ["tunnel_fee", "street_repair_fee"] and names.count("street_repair_fee") == 1
    assert client.patches == 2 and "2025-06" in schema[-1].description  # the other loader's column kept
    assert bql.add_columns(client, _settings(), "yellow", [ours]) == client.table.schema  # again: no patch
    assert client.patches == 2
    assert bql.add_columns(_RacingClient(declared, []), _settings(), "yellow", []) is None  # declared only


def test_bigquery_a_column_there_with_another_type_is_permanent():
    existing = [*bql.schema_fields("yellow"), bq.SchemaField("street_repair_fee", "STRING", mode="NULLABLE")]
    with pytest.raises(PermanentError) as err:
        bql.add_columns(
            _RacingClient(existing, []), _settings(), "yellow", [lake_field("street_repair_fee", "float", NEW, 2025, 6)]
        )
    assert err.value.reason == "column_type_changed" and err.value.field == "street_repair_fee"
