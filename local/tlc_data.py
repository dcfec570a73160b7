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
`typed=True` returns the types of TLC's parquet files instead. The columns themselves are in
local/tlc_columns.py; `local.tlc_files.write_month` writes either rendering as a file.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa

from local.tlc_columns import ARROW_TYPES, FHV_TLC_NAMES, SERVICES, SPECS, TAIL_NULLS, strings_array, to_source_strings

DEFAULT_SEED = 20210101
DEFAULT_ROWS_PER_DAY = 1_500
TAIL_FRACTION = 0.03  # share of rows at the end of a 2020+ month with the vendor fields empty

# Demand shape: relative trips per hour (weekday / weekend) and per weekday (Mon..Sun).
# fmt: off
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
# fmt: on


def _rng(service: str, year: int, month: int, seed: int) -> np.random.Generator:
    # Each (service, month) gets its own stream, so months differ but each is reproducible.
    return np.random.default_rng(np.random.SeedSequence([seed, year, month, SERVICES.index(service)]))


def _epoch(day: dt.datetime) -> int:
    return int((day - dt.datetime(1970, 1, 1)).total_seconds())


def _pickups(
    rng: np.random.Generator, year: int, month: int, n: int, quirks: bool, tail_fraction: float
) -> tuple[np.ndarray, int]:
    """Pickup times (epoch seconds, naive local) in file order, and the size of the empty-vendor tail."""
    days = calendar.monthrange(year, month)[1]
    start = _epoch(dt.datetime(year, month, 1))
    end = start + days * 86400
    extra = [
        start - int(rng.integers(60, 3600)),  # previous month, late evening
        _epoch(dt.datetime(2009, 1, 1)) + int(rng.integers(0, 3600)),
        end + int(rng.integers(0, 1800)),  # next month, just after midnight
        _epoch(dt.datetime(2008, 12, 31, 23)) + int(rng.integers(0, 3600)),
    ]
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
    hour = np.where(
        weekend,
        np.searchsorted(np.cumsum(_HOURS_WEEKEND) / _HOURS_WEEKEND.sum(), u, "right"),
        np.searchsorted(np.cumsum(_HOURS_WEEKDAY) / _HOURS_WEEKDAY.sum(), u, "right"),
    )
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
    vendor = _choice(rng, [1, 2], [0.15, 0.85] if green else [0.3, 0.7], n)
    miles, seconds = _trip(rng, n, 2.6 if green else 1.9, vendor)
    rate = _choice(
        rng,
        [1, 2, 3, 4, 5, 6, 99],
        [93, 1, 0.3, 0.3, 5.5, 0.05, 0.05] if green else [96.5, 2.2, 0.3, 0.2, 0.7, 0.05, 0.05],
        n,
    )
    hour = (pickup // 3600) % 24
    weekday = (pickup // 86400 + 3) % 7  # 1970-01-01 was a Thursday
    fare = np.maximum(250, _cents((250 + 250 * miles + 35 * seconds / 60) / 50) * 50)
    fare = np.where(rate == 2, 5200, fare)
    fare = np.where(rate == 5, _cents(rng.uniform(10, 80, n)) * 100, fare)
    extra = np.where((hour >= 20) | (hour < 6), 50, 0) + np.where((hour >= 16) & (hour < 20) & (weekday < 5), 100, 0)
    mta = np.full(n, 50)
    improvement = np.full(n, 30)
    congestion = np.where(rng.random(n) < (0.15 if green else 0.9), 275 if green else 250, 0)
    payment = _choice(rng, [1, 2, 3, 4, 5], [50, 48, 1, 0.8, 0.2] if green else [70, 28.5, 0.9, 0.5, 0.1], n)
    tip_rate = np.where(rng.random(n) < 0.15, 0, rng.uniform(0.12, 0.3, n))
    tolls = np.where(rng.random(n) < 0.04, _choice(rng, [612, 1225], [9, 1], n), 0)
    # Disputes and refunds: the meter reports the whole fare negated.
    negative = rng.random(n) < 0.004
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
    flag = np.where((vendor == 1) & (rng.random(n) < 0.03), "Y", "N")
    hot = _HOT_GREEN if green else _HOT_YELLOW
    cols = {
        "VendorID": vendor,
        "pickup": pickup,
        "dropoff": pickup + seconds,
        "passenger_count": passengers,
        "trip_distance": miles,
        "RatecodeID": rate,
        "store_and_fwd_flag": flag,
        "PULocationID": _locations(rng, hot, n),
        "DOLocationID": _locations(rng, hot, n),
        "payment_type": payment,
        "fare_amount": fare,
        "extra": extra,
        "mta_tax": mta,
        "tip_amount": tip,
        "tolls_amount": tolls,
        "improvement_surcharge": improvement,
        "total_amount": total,
        "congestion_surcharge": congestion,
    }
    if green:
        cols["trip_type"] = np.where(rate == 5, 2, 1)
        cols["ehail_fee"] = None
    return cols


def _fhv(rng: np.random.Generator, pickup: np.ndarray) -> dict[str, Any]:
    n = len(pickup)
    pickup = np.where(rng.random(n) < 0.4, pickup - pickup % 60, pickup)  # many bases report whole minutes
    _, seconds = _trip(rng, n, 3.5, None)
    base = _FHV_BASES[rng.choice(len(_FHV_BASES), n)]
    affiliated = np.where(rng.random(n) < 0.88, base, _FHV_BASES[rng.choice(len(_FHV_BASES), n)])
    return {
        "dispatching_base_num": base,
        "pickup": pickup,
        "dropoff": pickup + seconds,
        "PUlocationID": _locations(rng, _HOT_YELLOW, n),
        "DOlocationID": _locations(rng, _HOT_YELLOW, n),
        "SR_Flag": np.where(rng.random(n) < 0.02, 1, 0),
        "Affiliated_base_number": affiliated,
        "_nulls": {
            "PUlocationID": rng.random(n) < 0.2,
            "DOlocationID": rng.random(n) < 0.1,
            "SR_Flag": np.ones(n, bool),
            "Affiliated_base_number": rng.random(n) < 0.05,
        },
    }


def _from_numpy(values: np.ndarray, type_: pa.DataType, mask: np.ndarray | None = None) -> pa.Array:
    """numpy -> arrow over the same buffer. Not pa.array(): its pandas probe imports pandas, a
    second of start-up for the CLI and the server, for nothing."""
    values = np.ascontiguousarray(values)
    validity = None if mask is None or not mask.any() else pa.py_buffer(np.packbits(~mask, bitorder="little"))
    return pa.Array.from_buffers(type_, len(values), [validity, pa.py_buffer(values)], null_count=-1)


def _typed_array(kind: str, values: Any, n: int, mask: np.ndarray | None) -> pa.Array:
    if values is None:
        return pa.nulls(n, ARROW_TYPES[kind])
    if kind == "str":
        choices, index = np.unique(values, return_inverse=True)
        return strings_array([str(c) for c in choices]).take(_from_numpy(index.astype(np.int64), pa.int64(), mask))
    if kind == "ts":
        values = values.astype(np.int64) * 1_000_000
    elif kind == "money":
        values = values / 100
    elif kind in ("intf", "dist"):
        values = values.astype(np.float64)
    else:
        values = values.astype(np.int64)
    return _from_numpy(values, ARROW_TYPES[kind], mask)


def generate_month(
    service: str,
    year: int,
    month: int,
    rows: int | None = None,
    seed: int = DEFAULT_SEED,
    *,
    rows_per_day: int = DEFAULT_ROWS_PER_DAY,
    quirks: bool = True,
    typed: bool = False,
    tlc_names: bool = False,
) -> pa.Table:
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
    pickup, n_tail = _pickups(rng, year, month, n, quirks, TAIL_FRACTION if TAIL_NULLS[service] else 0.0)
    cols = _fhv(rng, pickup) if service == "fhv" else _taxi(service, rng, pickup, n_tail)
    nulls = cols.pop("_nulls", {})
    tail = np.arange(n) >= n - n_tail
    arrays, names = [], []
    for name, kind in SPECS[service]:
        key = "pickup" if name.endswith("pickup_datetime") else "dropoff" if kind == "ts" else name
        mask = nulls.get(name)
        if name in TAIL_NULLS[service]:
            mask = tail if mask is None else mask | tail
        arrays.append(_typed_array(kind, cols[key], n, mask if mask is not None and mask.any() else None))
        names.append(FHV_TLC_NAMES.get(name, name) if tlc_names else name)
    table = pa.table(arrays, names=names)
    return table if typed else to_source_strings(table)
