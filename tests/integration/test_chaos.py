"""`python -m chaos --quick` end to end (issue 12): two throwaway stacks beside the test stack,
one clean, one under faults of every boundary; the faulty one must end equal to the clean one.

Its own ports (TAXI_PORT_BASE 28000) and state directory, so the test stack is not touched. What
is asserted is the harness's verdict and that the run really was faulty; no timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_chaos_run_ends_equal_to_the_clean_run(tmp_path):
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "chaos",
            "--quick",
            "--seed",
            "1",
            "--port-base",
            "28000",
            "--work",
            str(tmp_path / "work"),
            "--json",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(proc.stdout)
    assert out.exists(), proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["problems"] == [] and proc.returncode == 0, (report["problems"], proc.stderr[-3000:])
    faulty, comparison = report["faulty"], report["comparison"]
    assert comparison["dates"] == comparison["dates_equal"] == 31
    assert report["workload"]["messages"] + report["workload"]["fanout"] >= 90
    assert len(faulty["stack_faults"]) >= 4 and not any("error" in f for f in faulty["stack_faults"])
    assert faulty["source"]["injected"], "the source failed at least once"
    assert report["clean"]["source"]["injected"] == [] and report["clean"]["stack_faults"] == []
    assert not faulty["accounting"]["stuck"]
