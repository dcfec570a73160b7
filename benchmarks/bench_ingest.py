"""Ingest speed and memory, as ratios against baselines measured in the same run.

    .venv/bin/python -m benchmarks.bench_ingest [--rows 1369765] [--repeat 3]

Each contender runs in its own subprocess (so its peak RSS is its own) on the
same generated month file (yellow 2021-01 at full size by default):
- gunzip:        just decompress the file (a floor no parser can beat)
- pandas:        the tutorial's code: read_csv with dtypes, passenger_count > 0, to_parquet per day
- duckdb:        COPY (SELECT ...) TO dir (FORMAT parquet, PARTITION_BY pickup_date)
- split_only:    ours: split_month once, every day's parquet in memory (the first date of a month)
- split:         ours: the same, then every day's trips/rejects written to disk (like DuckDB's output)
- backfill_31:   ours as a 31-date backfill does it: split once, then per date read, decode, check, publish
CPU seconds (user+sys) and peak RSS are reported, plus the targets' ratios.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONTENDERS = ("gunzip", "pandas", "duckdb", "split_only", "split", "backfill_31")


def run_gunzip(source: Path, out: Path) -> None:
    with gzip.open(source, "rb") as handle:
        while handle.read(1 << 20):
            pass


def run_pandas(source: Path, out: Path) -> None:
    import pandas as pd

    dtypes = {"VendorID": "Int64", "passenger_count": "Int64", "trip_distance": float, "RatecodeID": "Int64",
              "store_and_fwd_flag": str, "PULocationID": "Int64", "DOLocationID": "Int64", "payment_type": "Int64",
              "fare_amount": float, "extra": float, "mta_tax": float, "tip_amount": float, "tolls_amount": float,
              "improvement_surcharge": float, "total_amount": float, "congestion_surcharge": float}
    frame = pd.read_csv(source, dtype=dtypes, parse_dates=["tpep_pickup_datetime", "tpep_dropoff_datetime"])
    frame = frame[frame["passenger_count"] > 0]
    frame["pickup_date"] = frame["tpep_pickup_datetime"].dt.date
    frame.to_parquet(out, partition_cols=["pickup_date"], compression="zstd")


def run_duckdb(source: Path, out: Path) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute(f"""
        COPY (SELECT *, CAST(tpep_pickup_datetime AS DATE) AS pickup_date
              FROM read_csv('{source}', header = true)
              WHERE passenger_count > 0)
        TO '{out}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (pickup_date))""")


def _split(source: Path):
    from shared.cleaning import Rules
    from shared.lake import split_month

    with open(source, "rb") as handle:
        return split_month(handle, "csv.gz", "yellow", 2021, 1, Rules())


def run_split_only(source: Path, out: Path) -> None:
    _split(source)


def run_split(source: Path, out: Path) -> None:
    """The whole month into finished daily partitions on disk (what DuckDB's COPY does)."""
    out.mkdir(parents=True)
    for day, part in _split(source).days.items():
        (out / f"{day}.parquet").write_bytes(part.trips.to_pybytes())
        if part.rejects is not None:
            (out / f"{day}.rejects.parquet").write_bytes(part.rejects.to_pybytes())


def run_backfill_31(source: Path, out: Path) -> None:
    """As 31 ingest calls do it: stage the split once, then per date read, decode, check, publish."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from shared.cleaning import Rules, check_partition

    run_split(source, out / "staging")
    published = out / "trips"
    published.mkdir()
    for staged in sorted((out / "staging").glob("????-??-??.parquet")):
        day = dt.date.fromisoformat(staged.name[:10])
        data = staged.read_bytes()
        trips = pq.read_table(pa.BufferReader(data))
        check_partition(trips, "yellow", day, Rules(), trips.num_rows)
        (published / staged.name).write_bytes(data)


def _peak_rss_mb() -> float:
    """This process's own high-water mark (ru_maxrss would include the parent's, kept across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(name: str, source: Path) -> None:
    """Run one contender in this process and print its figures as JSON."""
    sys.path.insert(0, str(REPO))
    out = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    try:
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        globals()[f"run_{name}"](source, out / "out")
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        print(json.dumps({"name": name, "wall": wall, "cpu": cpu, "peak_mb": _peak_rss_mb()}))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_369_765)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument("--child", choices=CONTENDERS)
    parser.add_argument("--source", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.source)
        return

    sys.path.insert(0, str(REPO))
    from local.tlc_data import generate_month, write_month

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    source = work / "yellow_tripdata_2021-01.csv.gz"
    write_month(source, generate_month("yellow", 2021, 1, rows=args.rows, seed=1), "csv.gz")
    print(f"source: {args.rows:,} rows, {source.stat().st_size / 1e6:.1f} MB csv.gz", flush=True)
    results: dict[str, list[dict]] = {name: [] for name in args.only}
    for _ in range(args.repeat):  # interleaved, so machine noise hits every contender alike
        for name in args.only:
            proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_ingest", "--child", name,
                                   "--source", str(source)], cwd=REPO, capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f"{name} failed:\n{proc.stderr}")
            results[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    shutil.rmtree(work, ignore_errors=True)

    median = {name: {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "peak_mb")}
              for name, runs in results.items()}
    print(f"{'contender':<12} {'wall s':>8} {'cpu s':>8} {'peak MB':>8}")
    for name, m in median.items():
        print(f"{name:<12} {m['wall']:>8.2f} {m['cpu']:>8.2f} {m['peak_mb']:>8.0f}")
    if {"split", "duckdb"} <= set(median):
        print(f"split / duckdb wall: {median['split']['wall'] / median['duckdb']['wall']:.2f}x (target <= 1.2x)")
    if {"split", "pandas"} <= set(median):
        print(f"split / pandas wall: {median['split']['wall'] / median['pandas']['wall']:.2f}x")
    if "split" in median:
        print(f"split peak RSS: {median['split']['peak_mb']:.0f} MB (target < 300 MB)")
    if {"backfill_31", "split_only"} <= set(median):
        ratio = median["backfill_31"]["cpu"] / median["split_only"]["cpu"]
        print(f"31-date backfill / one month split, cpu: {ratio:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
