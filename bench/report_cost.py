"""`python -m bench --cost`: the cost model (bench/cost_model.py) fed by the backfill just measured.

Prints the measured inputs, the model's check against the same run (its predicted wall time for
the month's backfill through the local stack against the measured one), the estimate table for one
month and one year of each service at the Terraform defaults, and the prices with their pages.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from bench import cost_model as cm


def month_use(inputs: dict[str, Any], rows: int, dates: int, timeline: dict[str, Any] | None = None) -> cm.MonthUse:
    """The model's input from the measured figures. A loader's service time a request: its mean busy
    time, unless requests queued behind each other (all 31 arrive at once; the BigQuery bridge
    serializes a table's loads), when the pace it finished dates at, times the requests this stack
    runs at once, is the shorter figure. Ingest's first and later requests are taken as measured."""
    timeline = timeline or {}
    parallel = os.cpu_count() or 1
    functions = {}
    for name, f in inputs["functions"].items():
        n = int(f["requests"])
        service = 0.0
        if name.startswith("load_") and name in timeline and n > 1:
            span = timeline[name]["last"] - timeline[name]["first"]
            service = min(f["busy_seconds"] / n, span / (n - 1) * parallel)
        functions[name] = cm.FunctionUse(
            requests=n,
            busy_seconds=f["busy_seconds"],
            cpu_seconds=f["cpu_seconds"],
            first_seconds=f["first_seconds"] if name == "ingest" else 0.0,
            later_seconds=f["later_seconds"] if name == "ingest" else 0.0,
            service_seconds=service,
        )
    return cm.MonthUse(
        rows,
        dates,
        functions,
        inputs["lake_bytes"],
        inputs["bq_bytes"],
        inputs["pg_bytes"],
        inputs["status_bytes"],
        inputs["gcs_class_a"],
        inputs["gcs_class_b"],
    )


def local_sizing(parallel: int) -> dict[str, cm.Sizing]:
    """The local stack: one process per function on this machine's cores (functions-framework
    threads share them), so at most `parallel` requests of a function progress at once."""
    return {name: replace(size, max_instances=parallel) for name, size in cm.SIZING.items()}


def check(
    use: cm.MonthUse, timeline: dict[str, Any], measured_wall: float, parallel: int | None = None
) -> dict[str, Any]:
    """The model's finish time of each function for this very backfill through the local stack
    (`parallel` requests of a function at a time) against the run ledger's (seconds after the
    publish), and the whole backfill's predicted wall against the measured one."""
    parallel = parallel or os.cpu_count() or 1
    predicted = cm.finish_seconds(use, local_sizing(parallel))
    functions = {
        name: {"predicted": seconds, "measured": timeline[name]["last"]}
        for name, seconds in predicted.items()
        if name in timeline
    }
    total = max(predicted.values())
    return {
        "parallel": parallel,
        "functions": functions,
        "predicted": total,
        "measured": measured_wall,
        "ratio": total / measured_wall,
    }


def markdown(result: dict[str, Any], rows: int) -> tuple[str, dict[str, Any]]:
    inputs = result["cost_inputs"]
    use = month_use(inputs, rows, result["backfill"]["dates"], result["backfill"]["timeline"])
    checked = check(use, result["backfill"]["timeline"], result["backfill"]["wall"])
    estimates = cm.table(use)
    lines = [
        f"Measured on the month's backfill ({rows:,} rows, {use.dates} dates) through the local stack:",
        "",
        "| function | requests | busy s | CPU s | first request s | median later s | service s a request |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, f in use.functions.items():
        lines.append(
            f"| {name} | {f.requests} | {f.busy_seconds:.1f} | {f.cpu_seconds:.1f} | "
            f"{f.first_seconds:.2f} | {f.later_seconds:.2f} | {f.per_request():.2f} |"
        )
    lines += [
        "",
        f"Stored: lake {use.lake_bytes / 1e6:.1f} MB (raw, trips, rejects), BigQuery {use.bq_bytes / 1e6:.1f} MB "
        f"logical, Postgres {use.pg_bytes / 1e6:.1f} MB; a status query over the month scans "
        f"{use.status_bytes / 1e6:.1f} MB (billed at least 10 MB).",
        "",
        f"Model check, same run ({checked['parallel']} requests of a function at a time, as the local stack "
        f"serves them): predicted {checked['predicted']:.0f} s for the whole backfill, measured "
        f"{checked['measured']:.0f} s ({checked['ratio']:.2f}x); each function done at "
        + ", ".join(
            f"{name} {f['predicted']:.0f} s (measured {f['measured']:.0f} s)"
            for name, f in checked["functions"].items()
        )
        + ".",
        "",
        estimates_markdown(estimates),
        "",
        prices_markdown(),
    ]
    figures = {
        "check": checked,
        "estimates": [{**e.__dict__, "total": e.total} for e in estimates],
    }
    return "\n".join(lines), figures


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def estimates_markdown(estimates: list[cm.Estimate]) -> str:
    lines = [
        "| backfill | Cloud Run | Cloud Storage | BigQuery | Cloud SQL | total | wall time at the defaults |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in estimates:
        cells = [e.cloud_run, e.cloud_storage, e.bigquery, e.cloud_sql, e.total]
        lines.append(f"| {e.label} | " + " | ".join(f"${c:,.2f}" for c in cells) + f" | {hours(e.wall_seconds)} |")
    return "\n".join(lines)


def prices_markdown() -> str:
    lines = [
        f"Prices (USD, read {cm.PRICES_READ_ON} from the stored page text; unconfirmed = not on Google's own page):",
        "",
    ]
    for name, price in cm.PRICES.items():
        mark = "" if price.confirmed else " (unconfirmed)"
        lines.append(f"- `{name}` {price.value:g} {price.unit}{mark}: {price.url}")
    return "\n".join(lines)
