"""`python -m bench`: the month, the servers, the rounds of contenders, the report.

1. Generates the month with the generator the local stack serves (local/tlc_data.py):
   January 2021 yellow at full size by default, deterministic from --seed.
2. Starts its own TLC file host, fake-gcs-server and PostgreSQL (bench/servers.py).
3. Runs rounds: in each, every contender once, in its own process (bench/spawn.py starts bench/child.py), so a
   noisy neighbour hits a whole round alike. The Postgres contenders load the day that
   round's ingest wrote to the lake (and the same rows as CSV / DataFrame).
4. Checks the contenders did comparable work (row counts), prints the Markdown report and
   writes every raw figure as JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script (python bench/run.py): the repository is the root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import report, report_stages, servers, spawn, warehouse  # noqa: E402
from bench.month import fmt, make_month  # noqa: E402
from local.tlc_data import DEFAULT_SEED  # noqa: E402

FULL_ROWS = 1_369_765  # yellow, January 2021, as published
QUICK_DIVISOR = 20
MONTH_CONTENDERS = ("gunzip", "tutorial", "duckdb", "split", "ingest_31", "stages")
PG_CONTENDERS = ("pg_copy", "pg_ours", "pg_to_sql", "pg_big", "pg_migrate", "bq_big")
EXTRA = ("pg_migrate", "bq_big")  # run only when named in --only
ALL = MONTH_CONTENDERS + tuple(name for name in PG_CONTENDERS if name not in EXTRA)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"a 1/{QUICK_DIVISOR} month and one run: checks the benchmark works (CI)"
    )
    parser.add_argument("--rows", type=int, help=f"rows in the month (default {FULL_ROWS:,})")
    parser.add_argument("--runs", type=int, help="runs of each contender (default 3; --quick: 1)")
    parser.add_argument(
        "--service",
        choices=("yellow", "green", "fhv", "fhvhv"),
        default="yellow",
        help="the month's service (default yellow; the others run only gunzip, split and ingest_31, "
        "the contenders that read any service; fhvhv: TLC's 24-column parquet, gunzip then decodes it)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"generator seed (default {DEFAULT_SEED})")
    parser.add_argument(
        "--day",
        type=dt.date.fromisoformat,
        default=dt.date(2021, 1, 15),
        help="the day the Postgres contenders load (default 2021-01-15)",
    )
    parser.add_argument(
        "--to-sql-rows",
        type=int,
        help="load only this many rows with pandas to_sql and extrapolate (default: the whole day)",
    )
    warehouse.add_arguments(parser)
    parser.add_argument(
        "--only",
        nargs="+",
        choices=ALL + EXTRA,
        default=None,
        metavar="CONTENDER",
        help=f"a subset of {', '.join(ALL)}, or {', '.join(EXTRA)} "
        "(pg_* bring split and ingest_31, which make their day)",
    )
    parser.add_argument(
        "--stack",
        action="store_true",
        help="instead of the contenders: the month's backfill through a throwaway local stack, "
        "against the in-process floor (bench/stack.py)",
    )
    parser.add_argument(
        "--cost",
        action="store_true",
        help="the --stack backfill, then the cost model fed by its figures (bench/cost_model.py): dollars "
        "and wall time for a month and a year of each service at the Terraform defaults",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="every contender (bq_big too), then the --cost backfill through the stack: every target of "
        "issues 11 and 19 in one run, in one closing table",
    )
    parser.add_argument("--year", type=int, help="with --stack: also backfill YEAR (12 months, default size)")
    parser.add_argument("--port-base", type=int, default=27000, help="with --stack: its TAXI_PORT_BASE (27000)")
    parser.add_argument(
        "--json",
        type=Path,
        default=Path(".state/bench/results.json"),
        help="where the raw figures go (default .state/bench/results.json)",
    )
    args = parser.parse_args(argv)
    any_service = ("gunzip", "split", "ingest_31", "stages")
    if args.all and (args.only is not None or args.stack or args.cost or args.service != "yellow"):
        parser.error("--all: every contender, then the --cost backfill of yellow (no --only/--stack/--cost/--service)")
    if args.only is None:
        args.only = list(ALL) if args.service == "yellow" else list(any_service)
        args.only += ["bq_big"] if args.all else []
    elif args.service != "yellow" and set(args.only) - set(any_service):
        parser.error(f"--service {args.service} runs only {', '.join(any_service)} (the others read yellow's columns)")
    args.rows = args.rows or (FULL_ROWS // QUICK_DIVISOR if args.quick else FULL_ROWS)
    args.runs = args.runs or (1 if args.quick else 3)
    args.stack = args.stack or args.cost
    warehouse.resolve(args)
    if args.year is not None and not args.stack:
        parser.error("--year goes with --stack")
    if args.rows <= 0 or args.runs <= 0:
        parser.error("--rows and --runs must be positive")
    if args.day.strftime("%Y-%m") != "2021-01":
        parser.error(f"--day must be in the benchmark's month, 2021-01 (got {args.day})")
    if any(name in PG_CONTENDERS for name in args.only):  # their day (pg_*, bq_big) comes from these two
        args.only += [name for name in ("split", "ingest_31") if name not in args.only]
    return args


def _git_commit() -> str | None:
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=spawn.REPO, capture_output=True, text=True)
    return proc.stdout.strip() or None


def day_files(split_out: Path, day: dt.date, work: Path) -> tuple[Path, Path]:
    """The day's partition as parquet (for pandas) and header-less CSV (for psql), from the split's output."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    parquet = work / "day.parquet"
    shutil.copyfile(split_out / f"{day}.trips.parquet", parquet)
    csv = work / "day.csv"
    pacsv.write_csv(pq.read_table(parquet), csv, write_options=pacsv.WriteOptions(include_header=False))
    return parquet, csv


def check_comparable(rnd: report.Round) -> None:
    """Contenders that claim the same work must have produced the same rows; else the ratios lie."""
    pairs = [("tutorial", "duckdb"), ("split", "ingest_31")]
    for a, b in pairs:
        if a in rnd and b in rnd and rnd[a]["rows_out"] != rnd[b]["rows_out"]:
            raise RuntimeError(f"{a} wrote {rnd[a]['rows_out']} rows but {b} wrote {rnd[b]['rows_out']}")
    if "split" in rnd and rnd["split"]["rows_out"] + rnd["split"]["rows_rejected"] != rnd["split"]["rows_in"]:
        raise RuntimeError(f"the split lost rows: {rnd['split']}")
    loaded = {name: rnd[name]["rows_out"] for name in ("pg_copy", "pg_ours", "pg_big") if name in rnd}
    if len(set(loaded.values())) > 1:
        raise RuntimeError(f"the Postgres contenders loaded different row counts: {loaded}")


def run_round(
    index: int, args: argparse.Namespace, source: Path, work: Path, env: dict[str, str], pg: servers.Postgres
) -> report.Round:
    rnd: report.Round = {}
    out = work / f"out-{index}"
    out.mkdir()
    base = {"source": str(source), "fmt": fmt(source), "service": args.service, "year": 2021, "month": 1}
    for name in (n for n in MONTH_CONTENDERS if n in args.only):
        spec = {**base, "out": str(out / name)}
        if name in ("ingest_31", "stages"):
            spec["env"] = {**env, "LAKE_BUCKET": f"bench-lake-{index}"}
        rnd[name] = spawn.run(name, spec, work)
        print(f"  run {index + 1}: {name:<10} done", file=sys.stderr, flush=True)
        if name == "split":  # the Postgres contenders' day, as files
            parquet, csv = day_files(out / name, args.day, work)
        shutil.rmtree(out / name, ignore_errors=True)
    for name in (n for n in PG_CONTENDERS if n in args.only):
        spec = {
            **base,
            "env": {**env, **pg.settings_env(f"bench_{name}_{index}"), "LAKE_BUCKET": f"bench-lake-{index}"},
            "bucket": f"bench-lake-{index}",
            "day": args.day.isoformat(),
            "parquet": str(parquet),
            "csv": str(csv),
            "to_sql_rows": args.to_sql_rows,
            **warehouse.spec(args, index),
        }
        rnd[name] = spawn.run(name, spec, work)
        print(f"  run {index + 1}: {name:<10} done", file=sys.stderr, flush=True)
    out.rmdir()
    check_comparable(rnd)
    return rnd


def _meta(args: argparse.Namespace, source: Path, started: float) -> dict[str, object]:
    return {
        "service": args.service,
        "month": "2021-01",
        "rows": args.rows,
        "fmt": fmt(source),
        "seed": args.seed,
        "source_mb": source.stat().st_size / 1e6,
        "runs": args.runs,
        "quick": args.quick,
        "day": args.day.isoformat(),
        "big_rows": args.big_rows,
        "bq_days": args.bq_days,
        "commit": _git_commit(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1),
    }


def run_stack(args: argparse.Namespace, source: Path, work: Path, started: float) -> dict[str, Any]:
    from bench import stack

    args.cost = args.cost or args.all
    with servers.tlc_host(source.parents[1]) as tlc_url:
        result = stack.run(source, args.service, work, tlc_url, args.port_base, args.year, cost=args.cost)
    meta = _meta(args, source, started)
    print(report.stack_markdown(result, meta))
    if args.cost:
        from bench import report_cost

        text, result["cost"] = report_cost.markdown(result, args.rows)
        print("\n" + text)
    path = args.json  # --all: beside the contenders' figures, not over them
    if args.json.name == "results.json" or args.all:
        path = args.json.with_name("stack.json" if args.json.name == "results.json" else f"{args.json.stem}-stack.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "stack": result}, indent=1, default=str))
    print(f"\nraw figures: {path} ({meta['seconds']:.0f} s in all)", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    started = time.monotonic()
    try:
        tlc_root = work / "tlc"
        source = make_month(tlc_root, args.service, args.rows, args.seed)
        print(
            f"generated {args.rows:,} rows ({source.stat().st_size / 1e6:.1f} MB {fmt(source)}) in "
            f"{time.monotonic() - started:.0f} s; "
            + (
                "the backfill through a throwaway stack"
                if args.stack
                else f"{args.runs} run(s) of {', '.join(args.only)}"
            ),
            file=sys.stderr,
            flush=True,
        )
        if args.stack:
            run_stack(args, source, work, started)
            return 0
        with (
            servers.tlc_host(tlc_root) as tlc_url,
            servers.fake_gcs(work / "gcs") as gcs,
            servers.postgres() as pg,
            warehouse.bigquery(args, work / "gcs" / "objects") as bq_host,
        ):
            env = {
                **({"BIGQUERY_EMULATOR_HOST": bq_host} if bq_host else {}),
                "STORAGE_EMULATOR_HOST": gcs,
                "GCP_PROJECT": "bench",
                "DEAD_LETTER_TOPIC": "bench-dead-letter",
                "SOURCE_URL_TEMPLATE": tlc_url + "/{service}/{service}_tripdata_{year}-{month:02d}." + fmt(source),
                "LOG_LEVEL": "INFO",
            }
            rounds = [run_round(i, args, source, work, env, pg) for i in range(args.runs)]
        meta = _meta(args, source, started)
        summary = report.summarize(rounds)
        print(report.markdown(summary, meta))
        if all("stages" in r for r in rounds):
            summary["stages"] = report_stages.summarize([r["stages"] for r in rounds])
            print("\n" + report_stages.markdown(summary["stages"]))
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "summary": summary, "runs": rounds}, indent=1))
        print(f"\nraw figures: {args.json} ({meta['seconds']:.0f} s in all)", file=sys.stderr)
        if args.all:  # the same month through the stack, then every target of this run in one table
            print("\n" + report.all_targets_markdown(summary, run_stack(args, source, work, started)))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
