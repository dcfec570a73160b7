"""Schema mapping for the three services, the cleaning rules and their reasons, the checks."""

import datetime as dt
import gzip
import io

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from shared.core.errors import QualityCheckError, SourceError
from shared.core.schemas import arrow_schema, columns
from shared.ingest.cleaning import Rules, check_partition, map_columns, reason_counts
from shared.ingest.code_version import code_text, code_version
from shared.ingest.lake import split_month
from tests.conftest import REAL_YELLOW_SAMPLE as REAL

GREEN_CSV = b"""VendorID,lpep_pickup_datetime,lpep_dropoff_datetime,store_and_fwd_flag,RatecodeID,PULocationID,DOLocationID,passenger_count,trip_distance,fare_amount,extra,mta_tax,tip_amount,tolls_amount,ehail_fee,improvement_surcharge,total_amount,payment_type,trip_type,congestion_surcharge
2,2020-10-01 00:09:08,2020-10-01 00:15:42,N,1,74,41,1,1.14,6.5,0.5,0.5,0,0,,0.3,7.8,2,1,0
2,2020-10-01 23:59:59,2020-10-02 00:10:00,N,1,75,42,0,2.0,8,0.5,0.5,0,0,,0.3,9.3,1,1,0
,2020-10-02 08:00:00,2020-10-02 08:30:00,,,61,100,,5.5,20,0,0.5,0,0,,0.3,20.8,,,
2,2020-09-30 23:50:00,2020-10-01 00:05:00,N,1,74,41,1.0,1.5,7,0.5,0.5,0,0,,0.3,8.3,2,1,0
"""

FHV_CSV = b"""dispatching_base_num,pickup_datetime,dropOff_datetime,PUlocationID,DOlocationID,SR_Flag,Affiliated_base_number
B00009,2019-01-01 00:30:00,2019-01-01 00:44:00,264,264,,B00009
B00013,2019-01-01 00:01:00,2019-01-01 00:25:00,,,1,
B00014,2009-01-01 00:00:00,2009-01-01 00:10:00,10,20,,B00014
"""


def split(data: bytes, fmt: str, service: str, year: int, month: int, rules: Rules = Rules()):
    return split_month(io.BytesIO(data), fmt, service, year, month, rules)


def extract_day(result, day):
    """(trips, rejects) of a date, rejects as an empty table when there are none."""
    trips, rejects = result.tables(day)
    if rejects is None:
        rejects = pa.table({"reject_reason": pa.array([], pa.string())})
    return trips, rejects


def test_real_yellow_sample_three_zero_passenger_rows():
    result = split(gzip.compress(REAL.read_bytes()), "csv.gz", "yellow", 2021, 1)
    trips, rejects = extract_day(result, dt.date(2021, 1, 1))
    assert result.source_rows == 99
    assert (trips.num_rows, rejects.num_rows) == (96, 3)
    assert reason_counts(rejects["reject_reason"]) == {"zero_passengers": 3}
    assert trips.schema.equals(arrow_schema("yellow"))
    first = trips.slice(0, 1).to_pylist()[0]
    # First line of the file: 1,2021-01-01 00:30:10,2021-01-01 00:36:12,1,2.10,1,N,142,43,2,8,3,0.5,0,0,0.3,11.8,2.5
    assert first["pickup_datetime"] == dt.datetime(2021, 1, 1, 0, 30, 10)
    assert first["dropoff_datetime"] == dt.datetime(2021, 1, 1, 0, 36, 12)
    assert (first["trip_distance"], first["total_amount"], first["congestion_surcharge"]) == (2.1, 11.8, 2.5)
    assert (first["pu_location_id"], first["do_location_id"], first["store_and_fwd_flag"]) == (142, 43, "N")
    check_partition(trips, "yellow", dt.date(2021, 1, 1), Rules(), 99)


def test_green_mapping_reasons_and_month_level_rejects():
    result = split(GREEN_CSV, "csv", "green", 2020, 10)
    assert result.source_rows == 4
    month = result.tables(None)[1]
    assert reason_counts(month["reject_reason"]) == {"outside_source_month": 1}
    assert month["pickup_date"].to_pylist() == [dt.date(2020, 9, 30)]
    day1, rejects1 = extract_day(result, dt.date(2020, 10, 1))
    assert day1.num_rows == 1 and reason_counts(rejects1["reject_reason"]) == {"zero_passengers": 1}
    assert day1["pu_location_id"].to_pylist() == [74]
    day2, rejects2 = extract_day(result, dt.date(2020, 10, 2))
    assert day2.num_rows == 0 and reason_counts(rejects2["reject_reason"]) == {"missing_passenger_count": 1}
    # Conservation: every source row is in exactly one place.
    assert day1.num_rows + rejects1.num_rows + day2.num_rows + rejects2.num_rows + month.num_rows == 4


def test_keep_empty_passenger_count_setting_keeps_them():
    result = split(GREEN_CSV, "csv", "green", 2020, 10, Rules(keep_empty_passenger_count=True))
    trips, rejects = extract_day(result, dt.date(2020, 10, 2))
    assert trips.num_rows == 1 and rejects.num_rows == 0
    assert trips["passenger_count"].to_pylist() == [None] and trips["vendor_id"].to_pylist() == [None]


def test_fhv_has_no_passenger_rule_and_old_dates_are_rejected_once():
    result = split(FHV_CSV, "csv", "fhv", 2019, 1)
    trips, rejects = extract_day(result, dt.date(2019, 1, 1))
    assert trips.num_rows == 2 and rejects.num_rows == 0
    assert trips["sr_flag"].to_pylist() == [None, 1]
    assert trips["affiliated_base_number"].to_pylist() == ["B00009", None]
    assert reason_counts(result.tables(None)[1]["reject_reason"]) == {"outside_source_month": 1}


def test_fhv_parquet_with_2021_spellings():
    table = pa.table(
        {
            "dispatching_base_num": ["B1"],
            "pickup_datetime": pa.array([dt.datetime(2021, 2, 3, 4, 5)], pa.timestamp("us")),
            "dropoff_datetime": pa.array([dt.datetime(2021, 2, 3, 4, 50)], pa.timestamp("us")),
            "PULocationID": pa.array([1.0]),
            "DOLocationID": pa.array([2.0]),
            "SR_Flag": pa.array([None], pa.int64()),
            "Affiliated_base_number": ["B2"],
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    result = split(buffer.getvalue(), "parquet", "fhv", 2021, 2)
    trips, _ = extract_day(result, dt.date(2021, 2, 3))
    assert trips.to_pylist()[0]["do_location_id"] == 2
    assert trips.to_pylist()[0]["dropoff_datetime"] == dt.datetime(2021, 2, 3, 4, 50)


@pytest.mark.parametrize("service", ["yellow", "green", "fhv"])
def test_every_source_spelling_maps_to_a_snake_case_column(service):
    names = [c.sources[0] for c in columns(service) if c.sources]
    mapping = map_columns(service, names)
    assert set(mapping) == {c.name for c in columns(service) if c.sources}
    assert all(name == name.lower() for name in mapping)


def test_wrong_header_names_missing_and_unexpected():
    with pytest.raises(SourceError) as err:
        map_columns("yellow", ["<html>"])
    assert err.value.reason == "wrong_schema" and "vendor_id" in err.value.message and "<html>" in err.value.message


def with_values(data: bytes, column: str, values: dict[int, str]) -> bytes:
    """The CSV with some cells of `column` replaced (row index -> text), everything else verbatim."""
    names = pacsv.read_csv(io.BytesIO(data)).column_names
    table = pacsv.read_csv(
        io.BytesIO(data),
        convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=False),
    )
    cells = table[column].to_pylist()
    for row, text in values.items():
        cells[row] = text
    table = table.set_column(names.index(column), column, pa.array(cells, pa.string()))
    out = io.BytesIO()
    pacsv.write_csv(table, out)
    return out.getvalue()


def test_fractional_passengers_reject_the_row_not_the_month():
    bad = REAL.read_bytes().replace(
        b"\n1,2021-01-01 00:30:10,2021-01-01 00:36:12,1,", b"\n1,2021-01-01 00:30:10,2021-01-01 00:36:12,1.5,", 1
    )
    result = split(bad, "csv", "yellow", 2021, 1)
    trips, rejects = extract_day(result, dt.date(2021, 1, 1))
    assert (trips.num_rows, rejects.num_rows) == (95, 4)
    assert reason_counts(rejects["reject_reason"]) == {"zero_passengers": 3, "bad_value": 1}
    assert result.bad_values == {"passenger_count": {"rows": 1, "examples": ["1.5"]}}
    check_partition(trips, "yellow", dt.date(2021, 1, 1), Rules(), 99)


@pytest.mark.parametrize("fmt", ["csv", "csv.gz"])
def test_text_in_a_number_column_rejects_those_rows_and_keeps_the_rest(fmt):
    bad = with_values(REAL.read_bytes(), "fare_amount", {0: "n/a", 57: "12,5"})
    result = split(gzip.compress(bad) if fmt == "csv.gz" else bad, fmt, "yellow", 2021, 1)
    trips, rejects = extract_day(result, dt.date(2021, 1, 1))
    assert result.source_rows == 99 and (trips.num_rows, rejects.num_rows) == (94, 5)
    assert reason_counts(rejects["reject_reason"]) == {"zero_passengers": 3, "bad_value": 2}
    assert result.bad_values == {"fare_amount": {"rows": 2, "examples": ["n/a", "12,5"]}}
    bad_rows = rejects.filter(pc.equal(rejects["reject_reason"], "bad_value"))
    assert bad_rows["fare_amount"].null_count == 2 and bad_rows["total_amount"].null_count == 0
    # The clean rows are exactly those of a clean read of the same file.
    clean, _ = extract_day(split(REAL.read_bytes(), "csv", "yellow", 2021, 1), dt.date(2021, 1, 1))
    kept = set(trips["pickup_datetime"].to_pylist())
    assert (
        kept < set(clean["pickup_datetime"].to_pylist())
        and len(kept) == len(set(clean["pickup_datetime"].to_pylist())) - 2
    )


def test_an_unreadable_pickup_time_is_a_month_level_reject():
    bad = with_values(REAL.read_bytes(), "tpep_pickup_datetime", {3: "2021-01-01 25:61:00"})
    result = split(bad, "csv", "yellow", 2021, 1)
    assert reason_counts(result.tables(None)[1]["reject_reason"]) == {"missing_pickup_datetime": 1}
    assert result.bad_values == {"pickup_datetime": {"rows": 1, "examples": ["2021-01-01 25:61:00"]}}
    assert sum(d.rows_read for d in result.days.values()) == 98


def test_a_column_of_bad_values_is_a_bad_file_and_fails_the_month_naming_it():
    bad = with_values(REAL.read_bytes(), "trip_distance", {i: f"{i} miles" for i in range(11)})
    with pytest.raises(SourceError) as err:
        split(bad, "csv", "yellow", 2021, 1)
    assert err.value.field == "trip_distance" and err.value.reason == "bad_value"
    assert "too many values" in err.value.message


def test_a_parquet_month_with_a_fractional_count_rejects_that_row():
    table = pacsv.read_csv(io.BytesIO(REAL.read_bytes()))
    passengers = table["passenger_count"].to_pylist()
    passengers[5] = 2.5
    table = table.set_column(
        table.column_names.index("passenger_count"), "passenger_count", pa.array(passengers, pa.float64())
    )
    out = io.BytesIO()
    pq.write_table(table, out)
    result = split(out.getvalue(), "parquet", "yellow", 2021, 1)
    assert result.bad_values == {"passenger_count": {"rows": 1, "examples": ["2.5"]}}
    _, rejects = extract_day(result, dt.date(2021, 1, 1))
    assert reason_counts(rejects["reject_reason"])["bad_value"] == 1


def test_quality_checks_catch_what_the_rules_should_have_removed():
    result = split(REAL.read_bytes(), "csv", "yellow", 2021, 1)
    trips, _ = extract_day(result, dt.date(2021, 1, 1))
    with pytest.raises(QualityCheckError) as err:
        check_partition(trips, "yellow", dt.date(2021, 1, 2), Rules(), 96)
    assert err.value.field == "pickup_date"
    zeroed = trips.set_column(3, "passenger_count", pa.array([0] * trips.num_rows, pa.int64()))
    with pytest.raises(QualityCheckError) as err:
        check_partition(zeroed, "yellow", dt.date(2021, 1, 1), Rules(), 96)
    assert err.value.field == "passenger_count"
    with pytest.raises(QualityCheckError) as err:
        check_partition(trips.drop_columns(["airport_fee"]), "yellow", dt.date(2021, 1, 1), Rules(), 96)
    assert err.value.field == "schema"
    with pytest.raises(QualityCheckError):
        check_partition(trips.slice(0, 0), "yellow", dt.date(2021, 1, 1), Rules(), 96)
    check_partition(trips.slice(0, 0), "yellow", dt.date(2021, 1, 1), Rules(), 0)  # truly empty day is fine


def test_code_version_ignores_comments_and_docstrings_but_not_code():
    original = '"""Module doc."""\nX = 1  # why\n\ndef f(a):\n    """Doc."""\n    return a + X\n'
    reworded = '"""Reworded."""\n# a new comment\nX = 1\n\n\ndef f(a):\n    """Explained better."""\n    return a + X\n'
    changed = '"""Module doc."""\nX = 2  # why\n\ndef f(a):\n    """Doc."""\n    return a + X\n'
    assert code_text(original) == code_text(reworded)
    assert code_text(original) != code_text(changed)
    assert len(code_version()) == 16


@pytest.mark.parametrize("text", ["n/a", "NULL", "-", "1.2.3"])
def test_only_an_empty_cell_is_null_anything_else_unreadable_is_a_bad_value(text):
    result = split(with_values(REAL.read_bytes(), "tip_amount", {10: text}), "csv", "yellow", 2021, 1)
    assert result.bad_values == {"tip_amount": {"rows": 1, "examples": [text]}}


def test_the_second_read_of_a_large_gzip_month_is_not_disturbed_by_the_first():
    """pyarrow's reader reads ahead on its own threads; the retry must not share the file with it."""
    from local.tlc_data import generate_month
    from local.tlc_files import write_csv

    month = generate_month("yellow", 2021, 1, rows=120_000, seed=3)
    fares = month["fare_amount"].to_pylist()
    fares[5_000] = "n/a"  # early: the first reader's read-ahead still has most of the file to read
    month = month.set_column(month.column_names.index("fare_amount"), "fare_amount", pa.array(fares, pa.string()))
    sink = pa.BufferOutputStream()
    write_csv(month, sink)
    data = gzip.compress(sink.getvalue().to_pybytes(), 1)
    for _ in range(3):
        result = split(data, "csv.gz", "yellow", 2021, 1)
        assert result.source_rows == 120_000
        assert result.bad_values == {"fare_amount": {"rows": 1, "examples": ["n/a"]}}


def test_lines_with_the_wrong_number_of_fields_are_set_aside_verbatim():
    lines = REAL.read_bytes().split(b"\n")
    long_line, short_line = lines[5] + b",extra", b"1,2021-01-01 00:00:01"
    lines[5], lines[9] = long_line, short_line
    result = split(b"\n".join(lines), "csv", "yellow", 2021, 1)
    assert result.malformed == [long_line.decode(), short_line.decode()]
    assert result.source_rows == 97  # + 2 set aside = the sample's 99 rows
    assert sum(d.rows_read for d in result.days.values()) == 97


def test_many_malformed_lines_mean_a_corrupt_file():
    lines = REAL.read_bytes().split(b"\n")
    for i in range(1, 13):
        lines[i] = lines[i] + b",extra"
    with pytest.raises(SourceError) as err:
        split(b"\n".join(lines), "csv", "yellow", 2021, 1)
    assert (err.value.reason, err.value.field) == ("corrupt_source", "rows")
    assert "wrong number of fields" in err.value.message
