"""A month whose CSV is not all UTF-8, through ingest against fake-gcs-server and the Pub/Sub
emulator: before text_repair.py, one 0xA0 byte dead-lettered the whole FHV 2020-01 month
(`corrupt_source`, "CSV conversion error to string: invalid UTF8 data"). Now it completes; the
repaired rows are kept, counted in the manifest and listed in rejects/.../repaired_text.csv."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from functions import ingest as ingest_function
from local.tlc_data import generate_month
from local.tlc_files import write_csv
from shared.core import paths
from tests.gcs_events import message_published_event


def test_stray_bytes_complete_the_month_and_are_counted(fresh_bucket, tlc):
    data_dir, _ = tlc
    month = generate_month("fhv", 2020, 1, rows=2_300, seed=21, quirks=False)
    sink = pa.BufferOutputStream()
    write_csv(month, sink)
    lines = sink.getvalue().to_pybytes().split(b"\n")
    planted = {100: b"B02\xa0875", 1_000: b"B\xe9012", 2_000: b"B\xe2\x82"}  # 0xA0, 0xE9, a cut sequence
    for row, value in planted.items():
        fields = lines[row].split(b",")
        fields[0] = value
        lines[row] = b",".join(fields)
    (data_dir / "fhv").mkdir()
    (data_dir / "fhv" / "fhv_tripdata_2020-01.csv.gz").write_bytes(gzip.compress(b"\n".join(lines)))

    for day in (1, 15):
        ingest_function.handle(message_published_event({"date": f"2020-01-{day:02d}", "service": "fhv"}))

    manifest = json.loads(fresh_bucket.blob(paths.staging_manifest("fhv", 2020, 1)).download_as_bytes())
    assert manifest["text_repairs"]["rows"] == 3 and manifest["repaired_text_rows"] == 3
    assert manifest["text_repairs"]["columns"]["dispatching_base_num"]["rows"] == 3
    kept = sum(d["rows_read"] for d in manifest["days"].values()) + manifest["month_rejected_rows"]
    assert kept == manifest["source_rows"] == month.num_rows  # no row lost, none set aside as malformed
    listed = fresh_bucket.get_blob(paths.repaired_text_object("fhv", 2020, 1))
    assert listed is not None, "the repairs are where a person finds them, beside the month's rejects"
    table = pacsv.read_csv(io.BytesIO(listed.download_as_bytes()))
    assert sorted(table["source_row"].to_pylist()) == sorted(planted)  # data row n = line n + 1 of the file
    assert set(table["decoded_as"].to_pylist()) == {"B02\u00a0875", "Bé012", "Bâ‚"}
    for day in (dt.date(2020, 1, 1), dt.date(2020, 1, 15)):
        assert fresh_bucket.get_blob(paths.trips_object("fhv", day)) is not None
    trips = pq.read_table(
        io.BytesIO(fresh_bucket.get_blob(paths.trips_object("fhv", dt.date(2020, 1, 1))).download_as_bytes())
    )
    assert trips.num_rows == manifest["days"]["2020-01-01"]["rows_written"] > 0
