"""Fake NYC TLC month files, realistic enough that the pipeline cannot tell them from the real ones.

Why: the local stack, the integration tests and the benchmarks run without internet, yet the
pipeline must meet the genuine format and its quirks (see tests/data/SOURCES.md):
column names and order of the published files, `.20`-style distances, Y/N flags, zero passengers,
the 2020+ tail of rows with empty VendorID/passenger_count/RatecodeID/store_and_fwd_flag/
payment_type/congestion_surcharge, a few pickups outside the month (previous/next month,
2008/2009), negative fares and zero distances.

Everything is vectorized (numpy + pyarrow compute): the full yellow 2021-01 size (1,369,765 rows)
takes seconds. Output is deterministic: the same arguments give byte-identical files, because
the pipeline's idempotency tests download a month twice and compare.

`generate_month(...)` returns the columns as the CSV shows them (strings, nulls = empty cells);
`typed=True` returns the types of TLC's parquet files instead. `write_month` accepts either.
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import os
import struct
import sys
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

SERVICES = ("yellow", "green", "fhv")
FORMATS = ("csv.gz", "csv", "parquet")
DEFAULT_SEED = 20210101
DEFAULT_ROWS_PER_DAY = 1_500
TAIL_FRACTION = 0.03  # share of rows at the end of a 2020+ month with the vendor fields empty

# Column kinds drive both renderings: "int"/"intf" (int64 / float64 in parquet, digits in CSV),
# "money" (shortest decimal: 8, 0.5, 51.95), "dist" (two decimals, no leading zero: .20, 2.10),
# "ts" ('YYYY-MM-DD HH:MM:SS', naive local time), "str".
_YELLOW = [("VendorID", "int"), ("tpep_pickup_datetime", "ts"), ("tpep_dropoff_datetime", "ts"),
           ("passenger_count", "intf"), ("trip_distance", "dist"), ("RatecodeID", "intf"),
           ("store_and_fwd_flag", "str"), ("PULocationID", "int"), ("DOLocationID", "int"),
           ("payment_type", "int"), ("fare_amount", "money"), ("extra", "money"), ("mta_tax", "money"),
           ("tip_amount", "money"), ("tolls_amount", "money"), ("improvement_surcharge", "money"),
           ("total_amount", "money"), ("congestion_surcharge", "money")]
_GREEN = [("VendorID", "int"), ("lpep_pickup_datetime", "ts"), ("lpep_dropoff_datetime", "ts"),
          ("store_and_fwd_flag", "str"), ("RatecodeID", "intf"), ("PULocationID", "int"),
          ("DOLocationID", "int"), ("passenger_count", "intf"), ("trip_distance", "dist"),
          ("fare_amount", "money"), ("extra", "money"), ("mta_tax", "money"), ("tip_amount", "money"),
          ("tolls_amount", "money"), ("ehail_fee", "money"), ("improvement_surcharge", "money"),
          ("total_amount", "money"), ("payment_type", "intf"), ("trip_type", "intf"),
          ("congestion_surcharge", "money")]
# DataTalksClub's CSV mirror (the default source) keeps the 2019 names for every year.
_FHV = [("dispatching_base_num", "str"), ("pickup_datetime", "ts"), ("dropOff_datetime", "ts"),
        ("PUlocationID", "intf"), ("DOlocationID", "intf"), ("SR_Flag", "intf"),
        ("Affiliated_base_number", "str")]
# TLC's own 2021+ parquet files spell three of them differently.
FHV_TLC_NAMES = {"dropOff_datetime": "dropoff_datetime", "PUlocationID": "PULocationID",
                 "DOlocationID": "DOLocationID"}
_SPECS = {"yellow": _YELLOW, "green": _GREEN, "fhv": _FHV}
_KINDS = {name: kind for spec in _SPECS.values() for name, kind in spec}
_KINDS.update({new: _KINDS[old] for old, new in FHV_TLC_NAMES.items()})
_ARROW = {"int": pa.int64(), "intf": pa.float64(), "money": pa.float64(), "dist": pa.float64(),
          "ts": pa.timestamp("us"), "str": pa.string()}
# Columns emptied in the month's tail (2020+ files), per service.
_TAIL_NULLS = {"yellow": ("VendorID", "passenger_count", "RatecodeID", "store_and_fwd_flag", "payment_type",
                          "congestion_surcharge"),
               "green": ("VendorID", "store_and_fwd_flag", "RatecodeID", "passenger_count", "payment_type",
                         "trip_type", "congestion_surcharge"),
               "fhv": ()}

# Demand shape: relative trips per hour (weekday / weekend) and per weekday (Mon..Sun).
_HOURS_WEEKDAY = np.array([1.6, 1.0, .7, .5, .6, 1.0, 2.0, 3.4, 4.3, 4.4, 4.4, 4.6,
                           4.8, 5.0, 5.3, 5.4, 5.3, 5.6, 5.6, 4.8, 3.8, 3.4, 3.0, 2.3])
_HOURS_WEEKEND = np.array([3.0, 2.4, 1.8, 1.2, .8, .7, .9, 1.3, 2.0, 3.0, 3.9, 4.5,
                           4.8, 4.9, 4.9, 4.9, 4.8, 4.8, 4.6, 4.2, 3.6, 3.3, 3.2, 3.0])
_WEEKDAY_FACTOR = np.array([.95, 1.0, 1.02, 1.05, 1.08, .9, .75])
_HOT_YELLOW = [236, 237, 161, 162, 186, 170, 142, 239, 141, 48, 68, 234, 79, 140, 263, 238, 230, 132, 138, 107,
               43, 164, 100, 113, 249, 90, 246, 151, 74, 75]
_HOT_GREEN = [74, 75, 41, 42, 166, 7, 82, 129, 95, 97, 244, 43, 152, 116, 181, 65, 25, 255, 260, 226]
_FHV_BASES = np.array(["B00009", "B00013", "B00014", "B00021", "B00037", "B00053", "B00112", "B00149",
                       "B00221", "B00254", "B00256", "B00310", "B00647", "B01145", "B01239", "B02510",
                       "B02800", "B02844", "B03016", "B03160"])


def source_columns(service: str, *, tlc_names: bool = False) -> list[str]:
    """Column names, in file order, of a month file of `service`."""
    names = [name for name, _ in _SPECS[service]]
    return [FHV_TLC_NAMES.get(n, n) for n in names] if tlc_names else names


def _rng(service: str, year: int, month: int, seed: int) -> np.random.Generator:
    # Each (service, month) gets its own stream, so months differ but each is reproducible.
    return np.random.default_rng(np.random.SeedSequence([seed, year, month, SERVICES.index(service)]))


def _epoch(day: dt.datetime) -> int:
    return int((day - dt.datetime(1970, 1, 1)).total_seconds())


def _pickups(rng: np.random.Generator, year: int, month: int, n: int, quirks: bool,
             tail_fraction: float) -> tuple[np.ndarray, int]:
    """Pickup times (epoch seconds, naive local) in file order, and the size of the empty-vendor tail."""
    days = calendar.monthrange(year, month)[1]
    start = _epoch(dt.datetime(year, month, 1))
    end = start + days * 86400
    extra = [start - int(rng.integers(60, 3600)),                  # previous month, late evening
             _epoch(dt.datetime(2009, 1, 1)) + int(rng.integers(0, 3600)),
             end + int(rng.integers(0, 1800)),                     # next month, just after midnight
             _epoch(dt.datetime(2008, 12, 31, 23)) + int(rng.integers(0, 3600))]
    n_out = min(len(extra), n // 25) if quirks else 0
    n_tail = int(round(n * tail_fraction)) if quirks and n >= 20 else 0
    n_in = n - n_out
    # Largest-remainder split over days: every day gets its share, no day is empty.
    weekday0 = dt.date(year, month, 1).weekday()
    weekdays = (weekday0 + np.arange(days)) % 7
    share = _WEEKDAY_FACTOR[weekdays] / _WEEKDAY_FACTOR[weekdays].sum() * n_in
    counts = np.floor(share).astype(np.int64)
    counts[np.argsort(-(share - counts), kind="stable")[: n_in - counts.sum()]] += 1
    day = np.repeat(np.arange(days), counts)
    weekend = np.repeat(weekdays >= 5, counts)
    u = rng.random(n_in)
    hour = np.where(weekend, np.searchsorted(np.cumsum(_HOURS_WEEKEND) / _HOURS_WEEKEND.sum(), u, "right"),
                    np.searchsorted(np.cumsum(_HOURS_WEEKDAY) / _HOURS_WEEKDAY.sum(), u, "right"))
    ts = start + day * 86400 + np.minimum(hour, 23) * 3600 + rng.integers(0, 3600, n_in)
    tail_mask = np.zeros(n_in, bool)
    tail_mask[rng.choice(n_in, n_tail, replace=False)] = True
    body, tail = np.sort(ts[~tail_mask]), np.sort(ts[tail_mask])
    if n_out:
        body = np.insert(body, np.sort(rng.integers(0, len(body) + 1, n_out)), np.array(extra[:n_out]))
    return np.concatenate([body, tail]), n_tail


def _choice(rng: np.random.Generator, values: list, weights: list, n: int) -> np.ndarray:
    p = np.asarray(weights, float)
    return np.asarray(values)[rng.choice(len(values), n, p=p / p.sum())]


def _locations(rng: np.random.Generator, hot: list[int], n: int) -> np.ndarray:
    weights = np.ones(265)
    weights[np.array(hot) - 1] = np.linspace(120, 20, len(hot))
    weights[[263, 264]] = 6  # 264/265: unknown zones, real files have plenty
    return rng.choice(np.arange(1, 266), n, p=weights / weights.sum())


def _trip(rng: np.random.Generator, n: int, median_miles: float, vendor: np.ndarray | None):
    """Distance (miles) and duration (seconds): zero-distance trips are short, others ~11 mph."""
    miles = np.clip(rng.lognormal(np.log(median_miles), 0.85, n), 0.01, 60)
    if vendor is not None:  # vendor 1 meters report tenths of a mile, vendor 2 hundredths
        miles = np.where(vendor == 1, np.round(miles, 1), np.round(miles, 2))
    zero = rng.random(n) < 0.012
    miles = np.where(zero, 0.0, np.round(miles, 2))
    speed = np.clip(rng.lognormal(np.log(11), 0.3, n), 3, 45)
    seconds = miles / speed * 3600 + rng.exponential(90, n) + 30
    seconds = np.where(zero, rng.integers(5, 600, n), seconds)
    return miles, np.clip(seconds, 1, 3 * 3600).astype(np.int64)


def _cents(values: np.ndarray) -> np.ndarray:
    return np.round(values).astype(np.int64)


def _taxi(service: str, rng: np.random.Generator, pickup: np.ndarray, n_tail: int) -> dict[str, Any]:
    """Yellow and green rows as numpy arrays (money in cents)."""
    n = len(pickup)
    green = service == "green"
    vendor = _choice(rng, [1, 2], [.15, .85] if green else [.3, .7], n)
    miles, seconds = _trip(rng, n, 2.6 if green else 1.9, vendor)
    rate = _choice(rng, [1, 2, 3, 4, 5, 6, 99], [93, 1, .3, .3, 5.5, .05, .05] if green
                   else [96.5, 2.2, .3, .2, .7, .05, .05], n)
    hour = (pickup // 3600) % 24
    weekday = (pickup // 86400 + 3) % 7  # 1970-01-01 was a Thursday
    fare = np.maximum(250, _cents((250 + 250 * miles + 35 * seconds / 60) / 50) * 50)
    fare = np.where(rate == 2, 5200, fare)
    fare = np.where(rate == 5, _cents(rng.uniform(10, 80, n)) * 100, fare)
    extra = np.where((hour >= 20) | (hour < 6), 50, 0) + np.where((hour >= 16) & (hour < 20) & (weekday < 5), 100, 0)
    mta = np.full(n, 50)
    improvement = np.full(n, 30)
    congestion = np.where(rng.random(n) < (.15 if green else .9), 275 if green else 250, 0)
    payment = _choice(rng, [1, 2, 3, 4, 5], [50, 48, 1, .8, .2] if green else [70, 28.5, .9, .5, .1], n)
    tip_rate = np.where(rng.random(n) < .15, 0, rng.uniform(.12, .3, n))
    tolls = np.where(rng.random(n) < .04, _choice(rng, [612, 1225], [9, 1], n), 0)
    # Disputes and refunds: the meter reports the whole fare negated.
    negative = rng.random(n) < .004
    payment = np.where(negative, _choice(rng, [3, 4], [1, 1], n), payment)
    tip = np.where(payment == 1, _cents((fare + extra) * tip_rate), 0)
    tail = np.arange(n) >= n - n_tail
    if green:  # the tail's congestion cell is empty, so it is not in the total either
        congestion = np.where(tail, 0, congestion)
    # Like the real files: vendor 1 folds the congestion surcharge into `extra` and leaves it out of
    # total_amount; vendor 2 adds it to the total. The empty-vendor tail behaves like vendor 1.
    folded = ((vendor == 1) | tail) & ~np.bool_(green)
    extra = extra + np.where(folded, congestion, 0)
    sign = np.where(negative, -1, 1)
    fare, extra, mta, improvement, congestion = (a * sign for a in (fare, extra, mta, improvement, congestion))
    total = fare + extra + mta + tip + tolls + improvement + np.where(folded, 0, congestion)
    passengers = _choice(rng, [0, 1, 2, 3, 4, 5, 6], [2, 70, 14, 4, 2, 4.5, 3.5], n)
    flag = np.where((vendor == 1) & (rng.random(n) < .03), "Y", "N")
    hot = _HOT_GREEN if green else _HOT_YELLOW
    cols = {"VendorID": vendor, "pickup": pickup, "dropoff": pickup + seconds, "passenger_count": passengers,
            "trip_distance": miles, "RatecodeID": rate, "store_and_fwd_flag": flag,
            "PULocationID": _locations(rng, hot, n), "DOLocationID": _locations(rng, hot, n),
            "payment_type": payment, "fare_amount": fare, "extra": extra, "mta_tax": mta, "tip_amount": tip,
            "tolls_amount": tolls, "improvement_surcharge": improvement, "total_amount": total,
            "congestion_surcharge": congestion}
    if green:
        cols["trip_type"] = np.where(rate == 5, 2, 1)
        cols["ehail_fee"] = None
    return cols


def _fhv(rng: np.random.Generator, pickup: np.ndarray) -> dict[str, Any]:
    n = len(pickup)
    pickup = np.where(rng.random(n) < .4, pickup - pickup % 60, pickup)  # many bases report whole minutes
    _, seconds = _trip(rng, n, 3.5, None)
    base = _FHV_BASES[rng.choice(len(_FHV_BASES), n)]
    affiliated = np.where(rng.random(n) < .88, base, _FHV_BASES[rng.choice(len(_FHV_BASES), n)])
    return {"dispatching_base_num": base, "pickup": pickup, "dropoff": pickup + seconds,
            "PUlocationID": _locations(rng, _HOT_YELLOW, n), "DOlocationID": _locations(rng, _HOT_YELLOW, n),
            "SR_Flag": np.where(rng.random(n) < .02, 1, 0),
            "Affiliated_base_number": affiliated,
            "_nulls": {"PUlocationID": rng.random(n) < .2, "DOlocationID": rng.random(n) < .1,
                       "SR_Flag": np.ones(n, bool), "Affiliated_base_number": rng.random(n) < .05}}


def _from_numpy(values: np.ndarray, type_: pa.DataType, mask: np.ndarray | None = None) -> pa.Array:
    """numpy -> arrow over the same buffer. Not pa.array(): its pandas probe imports pandas, a
    second of start-up for the CLI and the server, for nothing."""
    values = np.ascontiguousarray(values)
    validity = None if mask is None or not mask.any() else pa.py_buffer(np.packbits(~mask, bitorder="little"))
    return pa.Array.from_buffers(type_, len(values), [validity, pa.py_buffer(values)], null_count=-1)


def _strings(texts: list[str]) -> pa.Array:
    """A short string array built from buffers (see _from_numpy)."""
    data = "".join(texts).encode()
    offsets = np.cumsum([0] + [len(t.encode()) for t in texts]).astype(np.int32)
    return pa.Array.from_buffers(pa.string(), len(texts), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _typed_array(kind: str, values: Any, n: int, mask: np.ndarray | None) -> pa.Array:
    if values is None:
        return pa.nulls(n, _ARROW[kind])
    if kind == "str":
        choices, index = np.unique(values, return_inverse=True)
        return _strings([str(c) for c in choices]).take(_from_numpy(index.astype(np.int64), pa.int64(), mask))
    if kind == "ts":
        values = values.astype(np.int64) * 1_000_000
    elif kind == "money":
        values = values / 100
    elif kind in ("intf", "dist"):
        values = values.astype(np.float64)
    else:
        values = values.astype(np.int64)
    return _from_numpy(values, _ARROW[kind], mask)


def generate_month(service: str, year: int, month: int, rows: int | None = None, seed: int = DEFAULT_SEED, *,
                   rows_per_day: int = DEFAULT_ROWS_PER_DAY, quirks: bool = True, typed: bool = False,
                   tlc_names: bool = False) -> pa.Table:
    """One month file of `service` as a table, columns named and ordered as the published file.

    rows: total rows (default rows_per_day x days in month). quirks=False drops the out-of-month
    pickups and the empty-vendor tail (negative fares, zero distances and zero passengers stay:
    they are ordinary rows). typed=False: strings exactly as the CSV shows them, nulls for empty
    cells; typed=True: TLC parquet types. tlc_names: FHV names of TLC's 2021+ parquet files.
    """
    if service not in SERVICES:
        raise ValueError(f"service must be one of {SERVICES}")
    n = rows_per_day * calendar.monthrange(year, month)[1] if rows is None else int(rows)
    if n < 0:
        raise ValueError("rows must be >= 0")
    rng = _rng(service, year, month, seed)
    pickup, n_tail = _pickups(rng, year, month, n, quirks, TAIL_FRACTION if _TAIL_NULLS[service] else 0.0)
    cols = _fhv(rng, pickup) if service == "fhv" else _taxi(service, rng, pickup, n_tail)
    nulls = cols.pop("_nulls", {})
    tail = np.arange(n) >= n - n_tail
    arrays, names = [], []
    for name, kind in _SPECS[service]:
        key = "pickup" if name.endswith("pickup_datetime") else "dropoff" if kind == "ts" else name
        mask = nulls.get(name)
        if name in _TAIL_NULLS[service]:
            mask = tail if mask is None else mask | tail
        arrays.append(_typed_array(kind, cols[key], n, mask if mask is not None and mask.any() else None))
        names.append(FHV_TLC_NAMES.get(name, name) if tlc_names else name)
    table = pa.table(arrays, names=names)
    return table if typed else to_source_strings(table)


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
    return _strings(texts).take(encoded.indices)


def to_source_strings(table: pa.Table) -> pa.Table:
    """A typed month table rendered as its CSV cells; string columns pass through unchanged.

    Columns are formatted in parallel: Arrow kernels release the GIL."""
    columns = [col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col for col in table.columns]
    kinds = [_KINDS.get(name, "str") for name in table.column_names]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        out = list(pool.map(_format, kinds, columns))
    return pa.table(out, names=table.column_names)


def to_parquet_types(table: pa.Table) -> pa.Table:
    """A month table (CSV strings or already typed) cast to the types of TLC's parquet files."""
    return pa.table([pc.cast(col, _ARROW[_KINDS.get(name, "str")]) for name, col in
                     zip(table.column_names, table.columns)], names=table.column_names)


def _format_of(path: Path) -> str:
    for fmt in FORMATS:
        if path.name.endswith("." + fmt):
            return fmt
    raise ValueError(f"cannot tell the format of {path.name}; pass one of {FORMATS}")


def write_csv(table: pa.Table, sink) -> None:
    """CSV as TLC writes it: unquoted header and cells, `\\n` line ends, empty cells for nulls."""
    options = pcsv.WriteOptions(quoting_style="none", quoting_header="none", batch_size=65_536)
    pcsv.write_csv(to_source_strings(table), sink, options)


_GZIP_CHUNK = 4 << 20
_WINDOW = 32 << 10


def _deflate_chunk(data: memoryview, start: int, level: int) -> bytes:
    end = min(start + _GZIP_CHUNK, len(data))
    primed = {"zdict": bytes(data[start - _WINDOW:start])} if start >= _WINDOW else {}
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 9, **primed)
    last = end == len(data)
    return compressor.compress(data[start:end]) + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def write_gzip(data: bytes | memoryview, sink, level: int = 6) -> None:
    """One gzip member, compressed pigz-style: fixed 4 MiB chunks deflated in parallel threads
    (zlib releases the GIL), each primed with the 32 KiB before it and ended on a byte boundary,
    then concatenated. Chunking does not depend on the thread count, and mtime is 0, so the bytes
    are the same on every machine; any gzip reader sees an ordinary single-member file."""
    data = memoryview(data).cast("B")
    starts = range(0, max(len(data), 1), _GZIP_CHUNK)
    sink.write(b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x00\xff")  # no name, mtime 0, OS unknown
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for block in pool.map(lambda start: _deflate_chunk(data, start, level), starts):
            sink.write(block)
    sink.write(struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF))


def write_month(path: str | os.PathLike, table_or_params: pa.Table | Mapping[str, Any], fmt: str | None = None, *,
                compresslevel: int = 5) -> Path:
    """Write a month file atomically (temp file + rename) and return its path.

    table_or_params: a table from generate_month (either rendering) or the keyword arguments of
    generate_month. fmt: csv.gz, csv or parquet (default: from the file name). Gzip output is
    deterministic (see write_gzip), so equal tables give byte-identical files.
    """
    path = Path(path)
    fmt = fmt or _format_of(path)
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}")
    table = table_or_params if isinstance(table_or_params, pa.Table) else generate_month(**table_or_params)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            if fmt == "parquet":
                pq.write_table(to_parquet_types(table), raw, compression="snappy")
            elif fmt == "csv":
                write_csv(table, raw)
            else:
                buffer = pa.BufferOutputStream()
                write_csv(table, buffer)
                write_gzip(buffer.getvalue(), raw, compresslevel)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a served or cached file is meant to be read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a fake NYC TLC month file.")
    parser.add_argument("--service", choices=SERVICES, default="yellow")
    parser.add_argument("--year", type=int, default=2021)
    parser.add_argument("--month", type=int, default=1)
    parser.add_argument("--rows", type=int, default=None, help="total rows (default rows-per-day x days)")
    parser.add_argument("--rows-per-day", type=int, default=DEFAULT_ROWS_PER_DAY)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--format", choices=FORMATS, default=None, help="default: from --out")
    parser.add_argument("--no-quirks", action="store_true", help="no out-of-month pickups, no empty tail")
    parser.add_argument("--tlc-names", action="store_true", help="FHV: TLC 2021+ parquet column names")
    parser.add_argument("--compresslevel", type=int, default=5, help="gzip level (6 is 2.5x slower for 3%% less)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    table = generate_month(args.service, args.year, args.month, args.rows, args.seed, rows_per_day=args.rows_per_day,
                           quirks=not args.no_quirks, tlc_names=args.tlc_names)
    path = write_month(args.out, table, args.format, compresslevel=args.compresslevel)
    print(f"{path}: {table.num_rows} rows, {path.stat().st_size} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
