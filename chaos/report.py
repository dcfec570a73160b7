"""`python -m chaos [--quick] [--seed N] ...`: both runs, the comparison, a table and a JSON report.

    python -m chaos --quick        one small month, about 100 events, a few faults (the test suite)
    python -m chaos                the full-size month and twelve small ones, about 1,000 events,
                                   every kind of fault several times (README, "Chaos")

Exit status 1 when any date differs from the clean run in any destination, a month's rows
are not conserved, something is left behind (a claim, an abandoned split, a staging table)
or a message is stuck; 0 otherwise. The JSON report (`--json`, default
.state/chaos/report.json) has every figure of the table and the detail behind it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from chaos import run as runner
from chaos import state
from chaos import workload as workloads
from local.stack.throwaway import REPO

QUICK: dict[str, Any] = dict(
    rows_per_day=300,
    publish_seconds=20.0,
    fault_count=5,
    fault_gap_seconds=5.0,
    quiet_seconds=8.0,
    settle_timeout=240.0,
)
FULL: dict[str, Any] = dict(
    rows_per_day=500,
    publish_seconds=150.0,
    fault_count=30,
    fault_gap_seconds=10.0,
    quiet_seconds=20.0,
    settle_timeout=1800.0,
)


def prepare_source(directory: Path, months: tuple[workloads.Month, ...]) -> None:
    """Write the months of an exact size (the full-size one) once; the others the server generates."""
    from local.tlc_data import generate_month
    from local.tlc_files import write_month

    for month in months:
        if month.rows is None:
            continue
        path = directory / month.service / f"{month.service}_tripdata_{month.year:04d}-{month.month:02d}.csv.gz"
        if path.is_file():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        write_month(path, generate_month(month.service, month.year, month.month, rows=month.rows, seed=3), "csv.gz")


def verdict(
    comparison: dict[str, Any],
    faulty: dict[str, Any],
    clean: dict[str, Any],
    clean_leftovers: dict[str, Any] | None = None,
) -> list[str]:
    """Every reason the run failed, for people; empty when it passed."""
    problems = []
    clean_left = {k: v for k, v in (clean_leftovers or {}).items() if v}
    if clean_left:
        problems.append(f"the clean run left behind: {clean_left}")
    if comparison["differences"]:
        problems.append(f"{len(comparison['differences'])} (date, destination) pairs differ from the clean run")
    if comparison["months_not_conserved"] or comparison["manifests_differing"]:
        problems.append(
            f"months not conserved {comparison['months_not_conserved']}, "
            f"manifests differing {comparison['manifests_differing']}"
        )
    left = {k: v for k, v in comparison["leftovers"].items() if v}
    if left:
        problems.append(f"left behind: {left}")
    for run in (clean, faulty):
        acc = run["accounting"]
        if acc["stuck"]:
            problems.append(f"{run['name']}: {len(acc['stuck'])} messages stuck in flight")
        if acc["dead_lettered_without_letter"]:
            problems.append(
                f"{run['name']}: {len(acc['dead_lettered_without_letter'])} dead-lettered records with no dead letter"
            )
    clean_acc = clean["accounting"]
    if clean_acc["dead_letters"] or clean_acc["function_retries"] or clean["source"]["injected"]:
        problems.append("the clean run was not clean (dead letters, retries or faults): no model")
    return problems


def table(report: dict[str, Any]) -> str:
    faulty, clean, comparison = report["faulty"], report["clean"], report["comparison"]
    acc = faulty["accounting"]
    kinds: dict[str, int] = {}
    for fault in faulty["source"]["injected"]:
        kinds[f"source {fault['kind']}"] = kinds.get(f"source {fault['kind']}", 0) + 1
    for fault in faulty["stack_faults"]:
        kinds[fault["kind"]] = kinds.get(fault["kind"], 0) + 1
    events = report["workload"]
    lines = [
        ("seed", report["seed"]),
        ("workload", f"{events['months']} months, {events['dates']} dates, {events['rows_source']:,} source rows"),
        (
            "events published",
            f"{events['messages']} ({events['by_kind']}) + {events['fanout']} backfill fan-out "
            f"= {events['messages'] + events['fanout']}",
        ),
        ("duplicates", f"{events['duplicates']} (dates asked for more than once)"),
        ("source requests / faults", f"{faulty['source']['requests']} / {len(faulty['source']['injected'])}"),
        ("faults by kind", ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))),
        ("stack faults that failed", sum(1 for f in faulty["stack_faults"] if "error" in f)),
        (
            "published again after Pub/Sub restarts",
            f"{faulty['republished']} messages, {faulty['renotified']} finalize notifications",
        ),
        ("retries seen", f"{acc['function_retries']} raised by functions, {acc['failed_pushes']} failed pushes"),
        ("dead letters by reason", ", ".join(f"{k} {v}" for k, v in acc["dead_letters_by_reason"].items()) or "none"),
        ("repair backfills (clean / faulty)", f"{clean['repair_backfills']} / {faulty['repair_backfills']}"),
        ("not complete before each repair", "; ".join(str(r["states"]) for r in faulty["repair_rounds"]) or "none"),
        ("stuck in flight", len(acc["stuck"])),
        ("running records whose outcome met a killed store", len(acc.get("outcome_lost_with_the_ledger_store", []))),
        ("dates compared x 3 destinations", comparison["dates"]),
        ("dates equal to the clean run", comparison["dates_equal"]),
        (
            "months conserved",
            f"{len(report['faulty_months']) - len(comparison['months_not_conserved'])}"
            f" of {len(report['faulty_months'])}",
        ),
        ("left behind", {k: len(v) for k, v in comparison["leftovers"].items()}),
        (
            "left by a killed load (expire in Google Cloud)",
            f"{len(comparison['crash_leftovers']['bigquery_staging_tables'])} BigQuery staging tables",
        ),
        (
            "wall time clean / faulty (s)",
            f"{clean['seconds']['total']} / {faulty['seconds']['total']} "
            f"(faulty: faults {faulty['seconds']['active']}, settled at "
            f"{faulty['seconds']['settled']})",
        ),
        ("verdict", "PASS" if not report["problems"] else "FAIL: " + "; ".join(report["problems"])),
    ]
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small month, ~100 events, a few faults")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.10, help="share of source requests that fail")
    parser.add_argument("--port-base", type=int, default=27000, help="TAXI_PORT_BASE of the throwaway stacks")
    parser.add_argument("--work", type=Path, default=REPO / ".state" / "chaos")
    parser.add_argument("--json", type=Path, default=None, help="report file (default WORK/report.json)")
    parser.add_argument("--soak", action="store_true", help="10-minute outages in a full-size backfill, unattended")
    args = parser.parse_args(argv)
    if args.soak:
        return _soak(args)
    options = runner.Options(
        seed=args.seed,
        quick=args.quick,
        rate=args.rate,
        port_base=args.port_base,
        work=args.work,
        **(QUICK if args.quick else FULL),
    )
    work = workloads.build(args.seed, args.quick)
    source_dir = args.work / "source"
    source_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    prepare_source(source_dir, work.months)
    print(f"chaos: seed {args.seed}, {len(work.messages)} messages over {len(work.months)} months", file=sys.stderr)
    clean = runner.execute("clean", work, options, source_dir, faulty=False)
    print(f"chaos: clean run done in {clean['seconds']['total']} s", file=sys.stderr)
    faulty = runner.execute("faulty", work, options, source_dir, faulty=True)
    comparison = state.compare(clean["state"], faulty["state"], work.dates, faulty["stack_faults"])
    per_date: dict[Any, Any] = {}
    for message in work.messages:
        if message.topic == "ingest":
            key = (message.body["service"], message.body["date"])
            per_date[key] = per_date.get(key, 0) + 1
    manifests = faulty["state"]["lake"]["manifests"]
    report = {
        "seed": args.seed,
        "quick": args.quick,
        "rate": args.rate,
        "workload": {
            "months": len(work.months),
            "dates": len(work.dates),
            "messages": len(work.messages),
            "by_kind": work.counts(),
            "fanout": work.fanout(),
            "duplicates": sum(1 for n in per_date.values() if n > 1),
            "rows_source": sum(m["source_rows"] for m in manifests.values()),
        },
        "clean": {k: v for k, v in clean.items() if k != "state"},
        "faulty": {k: v for k, v in faulty.items() if k != "state"},
        "faulty_months": manifests,
        "comparison": comparison,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    clean_leftovers = state.compare(clean["state"], clean["state"], work.dates)["leftovers"]
    report["problems"] = verdict(comparison, faulty, clean, clean_leftovers)
    out = args.json or args.work / "report.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(table(report))
    print(f"report: {out}")
    return 1 if report["problems"] else 0


def _soak(args: argparse.Namespace) -> int:
    """`--soak` (chaos/soak.py): the clean and the soak run of one full-size backfill."""
    from chaos import soak

    options = runner.Options(
        seed=args.seed, quick=False, rate=0.0, port_base=args.port_base, work=args.work, **soak.OPTIONS
    )
    source_dir = args.work / "source"
    source_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    prepare_source(source_dir, soak.workload().months)
    print("chaos: soak of one full-size backfill with 10-minute outages", file=sys.stderr)
    report = soak.run_soak(options, source_dir)
    report["problems"] = verdict(
        report["comparison"], report["faulty"], report["clean"], report["clean_leftovers"]
    ) + soak.problems(report)
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    out = args.json or args.work / "soak.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(soak.table(report))
    print(f"report: {out}")
    return 1 if report["problems"] else 0
