"""One contender in a fresh process: the child's side of the protocol (bench/spawn.py is the parent's).

A contender is `fn(spec, clock) -> outputs`: it does its untimed setup, enters `clock` around
the work being compared (imports included), and returns what it produced (rows) so the parent
can check that the contenders did comparable work.

    python -m bench.child NAME SPEC_FILE      (the spec names the "result" file to write)
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.measure import Clock, peak_rss_mb


def _registry() -> dict[str, Callable[[dict[str, Any], Clock], dict[str, Any]]]:
    from bench import contenders_month, contenders_postgres, contenders_stages, stack

    return {
        **contenders_month.CONTENDERS,
        **contenders_postgres.CONTENDERS,
        **contenders_stages.CONTENDERS,
        **stack.CONTENDERS,
    }


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
