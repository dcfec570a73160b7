"""Yellow 2009-2010 words become the codes later files use; an unknown word is a bad value, never a guess."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from shared.ingest.cleaning import Rules
from shared.ingest.lake import split_month
from shared.ingest.legacy_values import normalise

MAPPING = {
    "vendor_id": "vendor_name",
    "payment_type": "Payment_Type",
    "store_and_fwd_flag": "store_and_forward",
    "pickup_longitude": "Start_Lon",
}


def test_words_become_codes_digits_pass_and_zero_coordinates_become_null():
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array(["CMT", " vts ", "DDS", None]),
            pa.array(["CASH", "Credit", "No Charge", "2"]),
            pa.array([1.0, 0.0, None, 1.0]),
            pa.array([0.0, -73.98, None, -74.0]),
        ],
        names=list(MAPPING.values()),
    )
    out = normalise(batch, MAPPING).to_pydict()
    assert out["vendor_name"] == ["1", "2", "3", None]
    assert out["Payment_Type"] == ["2", "1", "3", "2"]
    assert out["store_and_forward"] == ["Y", "N", None, "Y"]
    assert out["Start_Lon"] == [None, -73.98, None, -74.0]


def test_a_modern_batch_is_returned_untouched():
    batch = pa.RecordBatch.from_arrays([pa.array([1, 2]), pa.array(["N", "Y"])], names=["VendorID", "flag"])
    assert normalise(batch, {"vendor_id": "VendorID", "store_and_fwd_flag": "flag"}) is batch


def test_an_unknown_payment_word_rejects_its_row_as_bad_value_and_names_it():
    rows = 40
    columns = {
        "vendor_name": ["VTS"] * rows,
        "Trip_Pickup_DateTime": [f"2009-01-{1 + i % 28:02d} 10:00:00" for i in range(rows)],
        "Trip_Dropoff_DateTime": [f"2009-01-{1 + i % 28:02d} 10:10:00" for i in range(rows)],
        "Passenger_Count": [1] * rows,
        "Trip_Distance": [1.5] * rows,
        "Payment_Type": ["CASH"] * (rows - 1) + ["Bitcoin"],
        "Fare_Amt": [7.0] * rows,
        "surcharge": [0.0] * rows,
        "mta_tax": [0.5] * rows,
        "Tip_Amt": [0.0] * rows,
        "Tolls_Amt": [0.0] * rows,
        "Total_Amt": [7.5] * rows,
        "Rate_Code": [None] * rows,
        "store_and_forward": [None] * rows,
    }
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    split = split_month(io.BytesIO(sink.getvalue()), "parquet", "yellow", 2009, 1, Rules())
    written = sum(day.rows_written for day in split.days.values())
    rejected = {r: n for day in split.days.values() for r, n in day.rejected_by_reason.items()}
    assert (written, rejected) == (rows - 1, {"bad_value": 1})
    assert split.bad_values["payment_type"]["examples"] == ["Bitcoin"]
