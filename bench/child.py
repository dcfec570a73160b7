"""One contender in a fresh process, and the parent's side of that protocol.

Why a process each: peak RSS (VmHWM) is a per-process high-water mark, so only a fresh
process gives a contender's own figure; and each pays its imports, as a cold function
instance does. A contender is `fn(spec, clock) -> outputs`: it does its untimed setup,
enters `clock` around the work being compared (imports included), and returns what it
produced (rows) so the parent can check that the contenders did comparable work.

    python -m bench.child NAME SPEC_FILE      (the spec names the "result" file to write)
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]


class Clock:
    """Wall and CPU seconds of the measured region(s): this process plus children it waited for."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    @staticmethod
    def _cpu() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    def __enter__(self) -> "Clock":
        self._wall0, self._cpu0 = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._wall0
        self.cpu += self._cpu() - self._cpu0


def peak_rss_mb() -> float:
    """This process's own high-water mark. (ru_maxrss is not: Linux carries it across exec,
    so a child started by a large parent would report the parent's size.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def _registry() -> dict[str, Callable[[dict[str, Any], Clock], dict[str, Any]]]:
    from bench import contenders_month, contenders_postgres, stack

    return {**contenders_month.CONTENDERS, **contenders_postgres.CONTENDERS, **stack.CONTENDERS}


def run(name: str, spec: dict[str, Any], work: Path) -> dict[str, Any]:
    """Parent side: run contender `name` in a fresh interpreter; its figures and outputs.
    The spec goes by file, not argv: it holds the throwaway server's password."""
    stem = work / f"{name}-{os.getpid()}-{time.monotonic_ns()}"
    spec_file, result = stem.with_suffix(".spec.json"), stem.with_suffix(".result.json")
    spec_file.write_text(json.dumps({**spec, "result": str(result)}))
    spec_file.chmod(0o600)
    try:
        proc = subprocess.run([sys.executable, "-m", "bench.child", name, str(spec_file)],
                              cwd=REPO, capture_output=True, text=True)
        if proc.returncode or not result.exists():
            tail = (proc.stderr or proc.stdout)[-3000:]
            raise RuntimeError(f"contender {name} failed (exit {proc.returncode}):\n{tail}")
        return json.loads(result.read_text())
    finally:
        spec_file.unlink(missing_ok=True)
        result.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    name, spec = argv[0], json.loads(Path(argv[1]).read_text())
    os.environ.update(spec.get("env", {}))
    clock = Clock()
    outputs = _registry()[name](spec, clock)
    figures = {"wall": clock.wall, "cpu": clock.cpu, "peak_mb": peak_rss_mb(), **outputs}
    if "pyarrow" in sys.modules:  # which allocator this contender ran with (shared/__init__.py)
        figures["arrow_pool"] = sys.modules["pyarrow"].default_memory_pool().backend_name
    Path(spec["result"]).write_text(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
