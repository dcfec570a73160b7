"""The benchmark runs end to end in --quick mode (what CI asks of it: it works, not how fast).

One `python -m bench --quick --all` run: every contender, then the --cost backfill through a
throwaway stack, then the one table of every target. It starts its own TLC host, fake-gcs-server,
PostgreSQL and stack, so nothing of the test stack is touched. Only what the run produced is
checked (rows, structure); no timing is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.contenders_stages import STAGES
from bench.run import ALL, FULL_ROWS, QUICK_DIVISOR

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick_all(tmp_path_factory) -> dict[str, Any]:
    results = tmp_path_factory.mktemp("bench") / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--all", "--port-base", "27500", "--json", str(results)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    stack = results.with_name("stack.json")  # where --all puts the stack's figures beside results.json
    return {"stdout": proc.stdout, "data": json.loads(results.read_text()), "stack": json.loads(stack.read_text())}


def test_quick_benchmark_runs_every_contender_on_comparable_work(quick_all):
    proc_stdout, data = quick_all["stdout"], quick_all["data"]
    (run,) = data["runs"]
    assert set(run) == {*ALL, "bq_big"}
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
    # ... and a fourth time into a table that already held the big table's rows (--quick: 1/100 of 50 M).
    assert run["pg_big"]["rows_out"] == day_rows and run["pg_big"]["table_rows"] >= 0.9 * data["meta"]["big_rows"]
    for name, figures in run.items():
        assert figures["wall"] > 0 and figures["cpu"] >= 0, name
    assert {t["target"] for t in data["summary"]["targets"]} == {
        "month split wall / DuckDB",
        "month split peak RSS",
        "31-date ingest CPU / one month split",
        "Postgres day load wall / psql \\copy",
        "Postgres new day into the big table / into an empty one",
        "Postgres day replace in the big table / in an empty one",
    }
    assert run["bq_big"]["rows_out"] == day_rows and run["bq_big"]["partitions"] == data["meta"]["bq_days"] + 1
    assert "| target | measured | limit |" in proc_stdout
    # The split's stage breakdown: every stage measured, each pass at least as long as the one before it.
    assert run["stages"]["rows_in"] == rows
    assert set(data["summary"]["stages"]["stages"]) == set(STAGES)
    assert "Where the month split's time goes" in proc_stdout


def test_quick_stack_benchmark_backfills_through_a_throwaway_stack_and_prices_it(quick_all):
    """The --cost part (the `--stack` run, then the cost model) brings up a second stack (its own state
    directory and ports) beside the test stack, backfills the month through it, checks a second
    backfill rewrites nothing, takes the stack down again, and prices what it measured."""
    proc_stdout = quick_all["stdout"]
    stack = quick_all["stack"]["stack"]
    floor, backfill = stack["floor"], stack["backfill"]
    assert backfill["dates"] == 31 and backfill["rows"] == sum(floor["expected"].values())
    assert (
        floor["split"]["rows_out"] == floor["pg_copy"]["rows_out"] == floor["bq_load"]["rows_out"] == backfill["rows"]
    )
    assert backfill["function_retries"] == 0 and backfill["dead_letters"] == 0
    assert stack["again"]["rewritten"] == []
    assert set(backfill["timeline"]) == {"ingest", "load_bigquery", "load_postgres"}
    assert all(t["runs"] == 31 for t in backfill["timeline"].values())
    assert "31-date backfill wall / floor" in proc_stdout
    # The cost model's inputs were measured, and it printed every service for a month and a year.
    data = stack
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
    assert "wall time at the defaults" in proc_stdout


def test_one_table_closes_the_run_with_every_target(quick_all):
    table = quick_all["stdout"].split("Every target, this run", 1)[1]
    for target in quick_all["data"]["summary"]["targets"]:
        assert f"| {target['target']} |" in table
    assert "| 31-date backfill through the stack / floor |" in table
