"""The benchmark runs end to end in --quick mode (what CI asks of it: it works, not how fast).

It starts its own TLC host, fake-gcs-server and PostgreSQL, so nothing of the local stack is
touched. Only what the run produced is checked (rows, structure); no timing is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.contenders_stages import STAGES
from bench.run import ALL, FULL_ROWS, QUICK_DIVISOR

REPO = Path(__file__).resolve().parents[2]


def test_quick_benchmark_runs_every_contender_on_comparable_work(tmp_path):
    results = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(results)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(results.read_text())
    (run,) = data["runs"]
    assert set(run) == set(ALL)
    rows = FULL_ROWS // QUICK_DIVISOR
    assert data["meta"]["rows"] == rows
    # Every source row is either in a daily partition or rejected, and ingest publishes what the split made.
    assert run["split"]["rows_in"] == rows
    assert run["split"]["rows_out"] + run["split"]["rows_rejected"] == rows
    assert run["ingest_31"]["rows_out"] == run["split"]["rows_out"]
    assert [d["date"] for d in run["ingest_31"]["per_date"]] == [f"2021-01-{n:02d}" for n in range(1, 32)]
    # The baselines apply the same filter, so they must agree with each other.
    assert run["tutorial"]["rows_out"] == run["duckdb"]["rows_out"] > 0.9 * rows
    # One day, loaded three ways, is the same number of rows each time.
    day_rows = run["pg_copy"]["rows_out"]
    assert day_rows > 0 and run["pg_ours"]["rows_out"] == run["pg_to_sql"]["rows_out"] == day_rows
    for name, figures in run.items():
        assert figures["wall"] > 0 and figures["cpu"] >= 0, name
    assert {t["target"] for t in data["summary"]["targets"]} == {
        "month split wall / DuckDB",
        "month split peak RSS",
        "31-date ingest CPU / one month split",
        "Postgres day load wall / psql \\copy",
    }
    assert "| target | measured | limit |" in proc.stdout
    # The split's stage breakdown: every stage measured, each pass at least as long as the one before it.
    assert run["stages"]["rows_in"] == rows
    assert set(data["summary"]["stages"]["stages"]) == set(STAGES)
    assert "Where the month split's time goes" in proc.stdout


def test_quick_stack_benchmark_backfills_through_a_throwaway_stack_and_prices_it(tmp_path):
    """`--cost` (the `--stack` run, then the cost model) brings up a second stack (its own state
    directory and ports) beside the test stack, backfills the month through it, checks a second
    backfill rewrites nothing, takes the stack down again, and prices what it measured."""
    results = tmp_path / "stack.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--cost", "--quick", "--port-base", "27500", "--json", str(results)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    stack = json.loads(results.read_text())["stack"]
    floor, backfill = stack["floor"], stack["backfill"]
    assert backfill["dates"] == 31 and backfill["rows"] == sum(floor["expected"].values())
    assert (
        floor["split"]["rows_out"] == floor["pg_copy"]["rows_out"] == floor["bq_load"]["rows_out"] == backfill["rows"]
    )
    assert backfill["function_retries"] == 0 and backfill["dead_letters"] == 0
    assert stack["again"]["rewritten"] == []
    assert set(backfill["timeline"]) == {"ingest", "load_bigquery", "load_postgres"}
    assert all(t["runs"] == 31 for t in backfill["timeline"].values())
    assert "31-date backfill wall / floor" in proc.stdout
    # The cost model's inputs were measured, and it printed every service for a month and a year.
    data = json.loads(results.read_text())["stack"]
    inputs = data["cost_inputs"]
    assert {name: f["requests"] for name, f in inputs["functions"].items()} == {
        "backfill": 1,
        "ingest": 31,
        "load_bigquery": 31,
        "load_postgres": 31,
    }
    assert all(f["cpu_seconds"] > 0 for f in inputs["functions"].values())
    assert inputs["lake_bytes"] > 0 and inputs["bq_bytes"] > 0 and inputs["pg_bytes"] > 0
    assert inputs["status_bytes"] == 8 * backfill["rows"]
    labels = [e["label"] for e in data["cost"]["estimates"]]
    assert labels == [f"{s}, {p}" for s in ("yellow", "green", "fhv", "fhvhv") for p in ("one month", "one year")]
    assert data["cost"]["check"]["measured"] == backfill["wall"] and data["cost"]["check"]["predicted"] > 0
    assert "wall time at the defaults" in proc.stdout
