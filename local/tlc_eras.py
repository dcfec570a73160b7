"""Era-faithful month files: the header, column order and types of any (service, source, month).

Why apart from local/tlc_data.py (whose realistic 2019-2021 months the stack serves): the archive
walk (tests/unit/test_archive_walk.py) needs one small file for every month TLC has published, as
its era wrote it (yellow 2009's `Trip_Pickup_DateTime` text and `CASH`, fhvhv's 24 parquet columns,
columns TLC stored with no type), and the bench needs a 20 M-row fhvhv month without holding it in
memory. The eras themselves are data in shared/core/eras.py; this module only draws values per kind.
"""

from __future__ import annotations

import calendar
import datetime as dt
import gzip
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from shared.core.eras import Era

_WORDS = {
    "vendor_word": ["CMT", "VTS", "DDS"],
    "payment_word": ["CASH", "Credit", "CSH", "CRD", "No Charge", "Dispute", "Cash", "CREDIT"],
    "yn": ["N", "Y"],
    "base": ["B02510", "B02764", "B02617", "B02682", "B02872"],
    "hvfhs": ["HV0003", "HV0005", "HV0004"],
}


def _time_role(name: str) -> str:
    lowered = name.lower()
    return next((role for role in ("request", "on_scene", "dropoff", "pickup") if role in lowered), "pickup")


def _draw(name: str, kind: str, rng: np.random.Generator, pickup: np.ndarray) -> pa.Array:
    """One column of n rows; `pickup` is epoch seconds (naive New York time)."""
    n = len(pickup)
    lowered = name.lower()
    if kind in ("ts", "tstext"):
        offset = {"pickup": 0, "dropoff": 600, "request": -300, "on_scene": -60}[_time_role(name)]
        seconds = pa.array(pickup + offset, pa.int64()).cast(pa.timestamp("s"))
        return (
            pc.strftime(seconds, format="%Y-%m-%d %H:%M:%S") if kind == "tstext" else seconds.cast(pa.timestamp("us"))
        )
    if kind == "null":
        return pa.nulls(n)
    if kind in _WORDS:
        words = _WORDS[kind]
        return pa.array(words, pa.string()).take(pa.array(rng.integers(0, len(words), n)))
    if kind == "str":
        if "base" in lowered:
            return pa.array(_WORDS["base"], pa.string()).take(pa.array(rng.integers(0, 5, n)))
        return pa.array(["N", "Y"], pa.string()).take(pa.array((rng.random(n) < 0.02).astype(np.int64)))
    if kind == "coord":
        centre = -73.98 if "lon" in lowered else 40.75
        values = np.round(centre + rng.normal(0, 0.03, n), 6)
        return pa.array(np.where(rng.random(n) < 0.02, 0.0, values), pa.float64())  # 0: no GPS fix
    if kind == "flag01":
        return pa.array((rng.random(n) < 0.01).astype(np.float64))
    if kind in ("money", "dist"):
        return pa.array(np.round(rng.uniform(0.5, 40, n), 2), pa.float64())
    if kind == "seconds":
        return pa.array(rng.integers(60, 3600, n), pa.int64())
    if "location" in lowered:
        codes = rng.integers(1, 266, n)
    elif "passenger" in lowered:
        codes = rng.integers(1, 7, n)  # never 0: those rows are rejected, the walk counts landings
    else:
        codes = rng.integers(1, 3, n)  # vendor, rate code, payment type, trip type, SR_Flag: small codes
    return pa.array(codes.astype(np.float64 if kind == "intf" else np.int64))


def _pickups(year: int, month: int, n: int, rng: np.random.Generator, day: int | None = None) -> np.ndarray:
    days = calendar.monthrange(year, month)[1]
    start = int((dt.datetime(year, month, 1) - dt.datetime(1970, 1, 1)).total_seconds())
    if day is not None:
        return np.sort(start + (day - 1) * 86400 + rng.integers(0, 86400 - 700, n))
    return np.sort(start + rng.integers(0, days * 86400 - 700, n))


def era_table(era: Era, year: int, month: int, rows: int, seed: int = 18, day: int | None = None) -> pa.Table:
    """`rows` trips of that month (or of one `day`) with the era's header, order and types."""
    rng = np.random.default_rng([seed, year, month, day or 0, len(era.columns)])
    pickup = _pickups(year, month, rows, rng, day)
    return pa.table([_draw(name, kind, rng, pickup) for name, kind in era.columns], names=era.names)


def _csv_text(table: pa.Table) -> pa.Table:
    """Cells as TLC's CSVs print them: times 'YYYY-MM-DD HH:MM:SS', numbers plain, nulls empty."""
    out = []
    for column in table.columns:
        if pa.types.is_timestamp(column.type):
            column = pc.strftime(column.cast(pa.timestamp("s")), format="%Y-%m-%d %H:%M:%S")
        out.append(column.cast(pa.string()))
    return pa.table(out, names=table.column_names)


def file_bytes(era: Era, table: pa.Table, fmt: str | None = None) -> bytes:
    """The table as the era's source serves it (CSV.gz for the mirror, parquet for TLC), or in `fmt`
    (the local stack's server speaks CSV.gz: a parquet era's header and order, rendered as CSV)."""
    sink = io.BytesIO()
    if (fmt or era.fmt) == "parquet":
        pq.write_table(table, sink)
        return sink.getvalue()
    options = pacsv.WriteOptions(quoting_style="none", quoting_header="none")
    pacsv.write_csv(_csv_text(table), sink, options)
    return gzip.compress(sink.getvalue(), compresslevel=1, mtime=0)


def day_tables(era: Era, year: int, month: int, rows: int, seed: int = 18) -> Iterator[pa.Table]:
    """A month of `rows` trips, one day's table at a time: memory bounded by a day, whatever `rows`."""
    days = calendar.monthrange(year, month)[1]
    for day in range(1, days + 1):
        share = rows // days + (1 if day <= rows % days else 0)
        yield era_table(era, year, month, share, seed, day)


def write_parquet_month(path: Path, era: Era, year: int, month: int, rows: int, row_group: int = 1 << 20) -> Path:
    """A parquet month of any size written day by day (a 20 M-row fhvhv month in bounded memory).
    Row groups of `row_group` rows, pyarrow's default size, as TLC's writer makes them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    writer: pq.ParquetWriter | None = None
    pending: list[pa.Table] = []
    pending_rows = 0
    try:
        for table in day_tables(era, year, month, rows):
            writer = writer or pq.ParquetWriter(tmp, table.schema)
            pending.append(table)
            pending_rows += table.num_rows
            while pending_rows >= row_group:
                whole = pa.concat_tables(pending)
                writer.write_table(whole.slice(0, row_group), row_group_size=row_group)
                pending, pending_rows = [whole.slice(row_group)], whole.num_rows - row_group
        if pending_rows and writer is not None:
            writer.write_table(pa.concat_tables(pending), row_group_size=row_group)
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)
    return path


def write_era_month(path: Path, service: str, year: int, month: int, rows: int, ext: str) -> bool:
    """A month of a service local/tlc_data.py does not draw (fhvhv), for the local TLC server: TLC's
    parquet era's columns, in the requested format, written atomically. False: tlc_data draws it."""
    from local.tlc_columns import SPECS
    from shared.core.eras import TLC, era

    if service in SPECS:
        return False
    found = era(service, TLC, year, month)
    if found is None:
        raise ValueError(f"no {service} era for {year}-{month:02d}")
    data = file_bytes(found, era_table(found, year, month, rows), "parquet" if ext == "parquet" else "csv.gz")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(gzip.decompress(data) if ext == "csv" else data)
    tmp.replace(path)
    return True
