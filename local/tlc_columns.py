"""The columns of TLC's month files, per service, and their two renderings (CSV text, parquet types).

Why apart from the generator (local/tlc_data.py): what a file looks like (names, order, kinds,
which columns TLC leaves empty) is a fact about TLC's files; how rows are drawn is ours. The
renderings are how TLC prints each kind: `.20`-style distances, shortest decimals for money,
'YYYY-MM-DD HH:MM:SS' timestamps.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SERVICES = ("yellow", "green", "fhv")

# Column kinds drive both renderings: "int"/"intf" (int64 / float64 in parquet, digits in CSV),
# "money" (shortest decimal: 8, 0.5, 51.95), "dist" (two decimals, no leading zero: .20, 2.10),
# "ts" ('YYYY-MM-DD HH:MM:SS', naive local time), "str".
_YELLOW = [
    ("VendorID", "int"),
    ("tpep_pickup_datetime", "ts"),
    ("tpep_dropoff_datetime", "ts"),
    ("passenger_count", "intf"),
    ("trip_distance", "dist"),
    ("RatecodeID", "intf"),
    ("store_and_fwd_flag", "str"),
    ("PULocationID", "int"),
    ("DOLocationID", "int"),
    ("payment_type", "int"),
    ("fare_amount", "money"),
    ("extra", "money"),
    ("mta_tax", "money"),
    ("tip_amount", "money"),
    ("tolls_amount", "money"),
    ("improvement_surcharge", "money"),
    ("total_amount", "money"),
    ("congestion_surcharge", "money"),
]
_GREEN = [
    ("VendorID", "int"),
    ("lpep_pickup_datetime", "ts"),
    ("lpep_dropoff_datetime", "ts"),
    ("store_and_fwd_flag", "str"),
    ("RatecodeID", "intf"),
    ("PULocationID", "int"),
    ("DOLocationID", "int"),
    ("passenger_count", "intf"),
    ("trip_distance", "dist"),
    ("fare_amount", "money"),
    ("extra", "money"),
    ("mta_tax", "money"),
    ("tip_amount", "money"),
    ("tolls_amount", "money"),
    ("ehail_fee", "money"),
    ("improvement_surcharge", "money"),
    ("total_amount", "money"),
    ("payment_type", "intf"),
    ("trip_type", "intf"),
    ("congestion_surcharge", "money"),
]
# DataTalksClub's CSV mirror (the default source) keeps the 2019 names for every year.
_FHV = [
    ("dispatching_base_num", "str"),
    ("pickup_datetime", "ts"),
    ("dropOff_datetime", "ts"),
    ("PUlocationID", "intf"),
    ("DOlocationID", "intf"),
    ("SR_Flag", "intf"),
    ("Affiliated_base_number", "str"),
]
# TLC's own 2021+ parquet files spell three of them differently.
FHV_TLC_NAMES = {"dropOff_datetime": "dropoff_datetime", "PUlocationID": "PULocationID", "DOlocationID": "DOLocationID"}
SPECS = {"yellow": _YELLOW, "green": _GREEN, "fhv": _FHV}
KINDS = {name: kind for spec in SPECS.values() for name, kind in spec}
KINDS.update({new: KINDS[old] for old, new in FHV_TLC_NAMES.items()})
ARROW_TYPES = {
    "int": pa.int64(),
    "intf": pa.float64(),
    "money": pa.float64(),
    "dist": pa.float64(),
    "ts": pa.timestamp("us"),
    "str": pa.string(),
}
# Columns emptied in the month's tail (2020+ files), per service.
TAIL_NULLS = {
    "yellow": (
        "VendorID",
        "passenger_count",
        "RatecodeID",
        "store_and_fwd_flag",
        "payment_type",
        "congestion_surcharge",
    ),
    "green": (
        "VendorID",
        "store_and_fwd_flag",
        "RatecodeID",
        "passenger_count",
        "payment_type",
        "trip_type",
        "congestion_surcharge",
    ),
    "fhv": (),
}


def source_columns(service: str, *, tlc_names: bool = False) -> list[str]:
    """Column names, in file order, of a month file of `service`."""
    names = [name for name, _ in SPECS[service]]
    return [FHV_TLC_NAMES.get(n, n) for n in names] if tlc_names else names


def _distance_text(value: float) -> str:
    """2.10, .20, .00: two decimals and no leading zero, as TLC's meters print them."""
    text = f"{value:.2f}"
    return text[1:] if text.startswith("0.") else "-" + text[2:] if text.startswith("-0.") else text


def _money_text(value: float) -> str:
    """The shortest decimal that round-trips, no trailing .0: 8, 0.5, 51.95, -5.5."""
    text = repr(value + 0.0)  # + 0.0 turns -0.0 into 0.0
    return text[:-2] if text.endswith(".0") else text


_TEXT = {"dist": _distance_text, "money": _money_text, "int": lambda v: str(int(v)), "intf": lambda v: str(int(v))}


def _format(kind: str, array: pa.Array) -> pa.Array:
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return array
    if kind == "ts":
        return pc.cast(pc.cast(array, pa.timestamp("s")), pa.string())
    # Few distinct values per column (fares come in 50-cent steps): format only the distinct ones,
    # in Python, then expand with take(). Arrow calls with Python scalars would import pandas.
    encoded = pc.dictionary_encode(array)
    to_text = _TEXT.get(kind, _money_text)
    texts = [to_text(v) for v in encoded.dictionary.to_pylist()]
    return strings_array(texts).take(encoded.indices)


def strings_array(texts: list[str]) -> pa.Array:
    """A short string array built from buffers: not pa.array(), whose pandas probe imports pandas
    (a second of start-up for the CLI and the server, for nothing)."""
    data = "".join(texts).encode()
    offsets = np.cumsum([0] + [len(t.encode()) for t in texts]).astype(np.int32)
    return pa.Array.from_buffers(pa.string(), len(texts), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def to_source_strings(table: pa.Table) -> pa.Table:
    """A typed month table rendered as its CSV cells; string columns pass through unchanged.

    Columns are formatted in parallel: Arrow kernels release the GIL."""
    columns = [col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col for col in table.columns]
    kinds = [KINDS.get(name, "str") for name in table.column_names]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        out = list(pool.map(_format, kinds, columns))
    return pa.table(out, names=table.column_names)


def to_parquet_types(table: pa.Table) -> pa.Table:
    """A month table (CSV strings or already typed) cast to the types of TLC's parquet files."""
    return pa.table(
        [
            pc.cast(col, ARROW_TYPES[KINDS.get(name, "str")])
            for name, col in zip(table.column_names, table.columns, strict=True)
        ],
        names=table.column_names,
    )
