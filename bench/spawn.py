"""The parent's side of the one-contender-per-process protocol: start `python -m bench.child`, read its figures.

Why a process each: peak RSS (VmHWM) is a per-process high-water mark, so only a fresh
process gives a contender's own figure; and each pays its imports, as a cold function
instance does. The child's side is bench/child.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run(name: str, spec: dict[str, Any], work: Path) -> dict[str, Any]:
    """Parent side: run contender `name` in a fresh interpreter; its figures and outputs.
    The spec goes by file, not argv: it holds the throwaway server's password."""
    stem = work / f"{name}-{os.getpid()}-{time.monotonic_ns()}"
    spec_file, result = stem.with_suffix(".spec.json"), stem.with_suffix(".result.json")
    spec_file.write_text(json.dumps({**spec, "result": str(result)}))
    spec_file.chmod(0o600)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.child", name, str(spec_file)], cwd=REPO, capture_output=True, text=True
        )
        if proc.returncode or not result.exists():
            tail = (proc.stderr or proc.stdout)[-3000:]
            raise RuntimeError(f"contender {name} failed (exit {proc.returncode}):\n{tail}")
        return json.loads(result.read_text())
    finally:
        spec_file.unlink(missing_ok=True)
        result.unlink(missing_ok=True)
