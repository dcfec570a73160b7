"""The fake TLC generator and its HTTP server: format fidelity, determinism, quirks, faults.

The generator stands in for the real files everywhere offline, so these tests pin what the
pipeline relies on: exact headers, the real file's inferred types, the 2020+ empty tail, the
out-of-month pickups, byte-identical reruns, and each fault of the server over real HTTP.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib

import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from local.tlc_columns import source_columns
from local.tlc_data import generate_month
from local.tlc_files import write_gzip, write_month
from local.tlc_server import serve_in_thread

YELLOW = (
    "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,"
    "store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,"
    "tolls_amount,improvement_surcharge,total_amount,congestion_surcharge"
)
GREEN = (
    "VendorID,lpep_pickup_datetime,lpep_dropoff_datetime,store_and_fwd_flag,RatecodeID,PULocationID,"
    "DOLocationID,passenger_count,trip_distance,fare_amount,extra,mta_tax,tip_amount,tolls_amount,ehail_fee,"
    "improvement_surcharge,total_amount,payment_type,trip_type,congestion_surcharge"
)
FHV = "dispatching_base_num,pickup_datetime,dropOff_datetime,PUlocationID,DOlocationID,SR_Flag,Affiliated_base_number"
MONTH_FILE = "yellow/yellow_tripdata_2021-01.csv.gz"


@pytest.mark.parametrize("service, header", [("yellow", YELLOW), ("green", GREEN), ("fhv", FHV)])
def test_columns_are_the_published_names_in_order(service, header):
    for typed in (False, True):
        assert generate_month(service, 2021, 1, rows=300, typed=typed).column_names == header.split(",")
    assert source_columns(service) == header.split(",")


def test_fhv_tlc_parquet_variant_names():
    table = generate_month("fhv", 2021, 3, rows=100, tlc_names=True)
    assert table.column_names == [
        "dispatching_base_num",
        "pickup_datetime",
        "dropoff_datetime",
        "PULocationID",
        "DOLocationID",
        "SR_Flag",
        "Affiliated_base_number",
    ]


@pytest.mark.parametrize("fmt", ["csv.gz", "csv", "parquet"])
def test_same_arguments_give_byte_identical_files(tmp_path, fmt):
    params = {"service": "yellow", "year": 2021, "month": 2, "rows": 5_000, "seed": 7}
    first = write_month(tmp_path / f"a.{fmt}", generate_month(**params), fmt).read_bytes()
    second = write_month(tmp_path / f"b.{fmt}", params, fmt).read_bytes()
    other = write_month(tmp_path / f"c.{fmt}", params | {"seed": 8}, fmt).read_bytes()
    assert first == second
    assert first != other


def test_header_and_inferred_types_match_the_real_file(tmp_path, real_yellow_sample):
    path = write_month(tmp_path / "yellow_tripdata_2021-01.csv.gz", generate_month("yellow", 2021, 1, rows=3_000))
    with gzip.open(path, "rt") as handle:
        assert handle.readline() == real_yellow_sample.read_text().splitlines()[0] + "\n"
    ours, real = pcsv.read_csv(path), pcsv.read_csv(real_yellow_sample)
    assert ours.num_rows == 3_000
    assert ours.schema == real.schema  # the same types a reader infers from the genuine file


def test_empty_tail_out_of_month_pickups_and_value_quirks():
    table = generate_month("yellow", 2021, 1, rows=10_000)
    rows = table.to_pydict()
    tail = 300  # 3 %
    for name in (
        "VendorID",
        "passenger_count",
        "RatecodeID",
        "store_and_fwd_flag",
        "payment_type",
        "congestion_surcharge",
    ):
        assert all(v is None for v in rows[name][-tail:]), name
        assert None not in rows[name][:-tail], name
    assert table.num_rows - tail == sum(v is not None for v in rows["VendorID"])

    pickups = [dt.datetime.fromisoformat(v) for v in rows["tpep_pickup_datetime"]]
    dropoffs = [dt.datetime.fromisoformat(v) for v in rows["tpep_dropoff_datetime"]]
    outside = [p for p in pickups if (p.year, p.month) != (2021, 1)]
    assert any(p.year < 2010 for p in outside) and any(p.date() == dt.date(2020, 12, 31) for p in outside)
    assert len(outside) <= 4
    assert {p.day for p in pickups if (p.year, p.month) == (2021, 1)} == set(range(1, 32))
    assert all(d > p for p, d in zip(pickups, dropoffs, strict=True))
    assert all(len(v) == 19 for v in rows["tpep_pickup_datetime"])  # 'YYYY-MM-DD HH:MM:SS'

    passengers = [v for v in rows["passenger_count"] if v is not None]
    assert 0.01 < passengers.count("0") / len(passengers) < 0.04
    distances = rows["trip_distance"]
    assert ".00" in distances and any(v.startswith(".") and v != ".00" for v in distances)
    assert all(len(v.split(".")[1]) == 2 for v in distances)
    assert any(float(v) < 0 for v in rows["fare_amount"])
    assert all(len(v.split(".")[-1]) <= 2 for v in rows["total_amount"])  # no 2.1000000001
    assert {int(v) for v in rows["PULocationID"] + rows["DOLocationID"]} <= set(range(1, 266))
    assert {v for v in rows["payment_type"] if v} <= {"1", "2", "3", "4", "5"}
    assert {v for v in rows["RatecodeID"] if v} <= {"1", "2", "3", "4", "5", "6", "99"}
    assert {v for v in rows["VendorID"] if v} == {"1", "2"}
    assert {v for v in rows["store_and_fwd_flag"] if v} == {"Y", "N"}


def test_green_and_fhv_specifics():
    green = generate_month("green", 2020, 12, rows=2_000)
    assert green["ehail_fee"].null_count == 2_000
    assert set(green["trip_type"].drop_null().to_pylist()) <= {"1", "2"}
    assert green["trip_type"].null_count == 60 and green["VendorID"].null_count == 60
    fhv = generate_month("fhv", 2019, 1, rows=2_000)
    assert fhv["dispatching_base_num"].null_count == 0  # no vendor tail in FHV files
    assert all(v.startswith("B") for v in fhv["dispatching_base_num"].to_pylist())


def test_parquet_has_tlc_types(tmp_path):
    path = write_month(
        tmp_path / "yellow_tripdata_2021-01.parquet", {"service": "yellow", "year": 2021, "month": 1, "rows": 1_000}
    )
    schema = pq.read_schema(path)
    assert str(schema.field("tpep_pickup_datetime").type) == "timestamp[us]"
    assert str(schema.field("VendorID").type) == "int64" and str(schema.field("trip_distance").type) == "double"
    assert str(schema.field("passenger_count").type) == "double"


def test_default_size_and_cli(tmp_path):
    assert generate_month("yellow", 2021, 2).num_rows == 1_500 * 28
    out = tmp_path / "g.csv.gz"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "local.tlc_files",
            "--service",
            "green",
            "--year",
            "2020",
            "--month",
            "10",
            "--rows",
            "1234",
            "--format",
            "csv.gz",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    assert (
        out.read_bytes()
        == write_month(tmp_path / "h.csv.gz", generate_month("green", 2020, 10, rows=1234)).read_bytes()
    )


def test_parallel_gzip_is_one_ordinary_member():
    data = bytes(range(256)) * 70_000  # 17.9 MB: several 4 MiB chunks
    sink = io.BytesIO()
    write_gzip(data, sink)
    blob = sink.getvalue()
    decompressor = zlib.decompressobj(31)
    assert decompressor.decompress(blob) == data and decompressor.eof and decompressor.unused_data == b""
    assert blob[4:8] == b"\0\0\0\0"  # mtime 0


# --- the HTTP server, over real sockets -------------------------------------------------------


@pytest.fixture
def tlc(tmp_path):
    server, base_url = serve_in_thread(tmp_path, rows_per_day=40, slow_seconds=2)
    yield tmp_path, base_url
    server.shutdown()


def fetch(url: str, method: str = "GET", timeout: float = 10) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_serves_generated_month_cached_with_length_and_head(tlc, tmp_path_factory):
    data_dir, base = tlc
    status, headers, body = fetch(f"{base}/{MONTH_FILE}")
    expected = write_month(
        tmp_path_factory.mktemp("x") / "y.csv.gz", generate_month("yellow", 2021, 1, rows_per_day=40)
    ).read_bytes()
    assert status == 200 and body == expected and int(headers["Content-Length"]) == len(body)
    assert (data_dir / MONTH_FILE).read_bytes() == body
    status, headers, head_body = fetch(f"{base}/{MONTH_FILE}", "HEAD")
    assert status == 200 and head_body == b"" and int(headers["Content-Length"]) == len(body)
    assert fetch(f"{base}/{MONTH_FILE}")[2] == body


def test_file_present_in_data_dir_is_served_as_is(tlc, real_yellow_sample):
    data_dir, base = tlc
    real = gzip.compress(real_yellow_sample.read_bytes(), mtime=0)
    (data_dir / "yellow").mkdir()
    (data_dir / MONTH_FILE).write_bytes(real)
    (data_dir / "notes.txt").write_text("hello")
    assert fetch(f"{base}/{MONTH_FILE}")[2] == real
    assert fetch(f"{base}/notes.txt")[2] == b"hello"


@pytest.mark.parametrize(
    "path",
    [
        "/yellow/yellow_tripdata_2999-01.csv.gz",
        "/yellow/yellow_tripdata_2008-12.csv.gz",
        "/green/green_tripdata_2013-07.csv.gz",
        "/yellow/yellow_tripdata_2021-13.csv.gz",
        "/blue/blue_tripdata_2021-01.csv.gz",
        "/yellow/green_tripdata_2021-01.csv.gz",
        "/yellow/yellow_tripdata_2021-01.zip",
        "/../etc/passwd",
        "/",
        "/faults/unknown/" + MONTH_FILE,
        "/faults/404/" + MONTH_FILE,
    ],
)
def test_not_found(tlc, path):
    assert fetch(tlc[1] + path)[0] == 404


def test_fault_truncated_gzip(tlc):
    status, headers, body = fetch(f"{tlc[1]}/faults/truncated-gzip/{MONTH_FILE}")
    whole = fetch(f"{tlc[1]}/{MONTH_FILE}")[2]
    assert status == 200 and body == whole[: len(whole) // 2] and int(headers["Content-Length"]) == len(body)
    with pytest.raises(EOFError):
        gzip.decompress(body)


def test_fault_wrong_header(tlc):
    status, _, body = fetch(f"{tlc[1]}/faults/wrong-header/{MONTH_FILE}")
    header = gzip.decompress(body).split(b"\n", 1)[0].decode()
    assert status == 200 and header != YELLOW and len(header.split(",")) == 18
    assert "tpep_pickup_datetime" not in header and header.startswith("column_1,column_2,")


def test_fault_html_page(tlc):
    status, headers, body = fetch(f"{tlc[1]}/faults/html/{MONTH_FILE}")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and body.startswith(b"<!DOCTYPE html>")


def test_fault_500_once_per_path(tlc):
    base = tlc[1]
    assert fetch(f"{base}/faults/500-once/{MONTH_FILE}")[0] == 500
    status, _, body = fetch(f"{base}/faults/500-once/{MONTH_FILE}")
    assert status == 200 and gzip.decompress(body).startswith(YELLOW.encode())
    assert fetch(f"{base}/faults/500-once/yellow/yellow_tripdata_2021-02.csv.gz")[0] == 500


def test_fault_slow_outlasts_a_client_timeout_then_answers(tlc):
    url = f"{tlc[1]}/faults/slow/{MONTH_FILE}"
    started = time.monotonic()
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        fetch(url, timeout=0.5)
    assert time.monotonic() - started < 1.5
    started = time.monotonic()
    status, _, body = fetch(url, timeout=10)
    assert status == 200 and len(body) > 0 and 1.9 < time.monotonic() - started < 5
