"""`shared` chooses Arrow's allocator before pyarrow loads, unless the environment already did."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBE = "import main, pyarrow as pa; print(pa.default_memory_pool().backend_name)"


def backend(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env={**clean, **env}, capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def test_the_functions_run_arrow_on_jemalloc():
    assert backend() == "jemalloc"


@pytest.mark.parametrize("pool", ["system", "mimalloc"])
def test_an_explicit_choice_in_the_environment_wins(pool):
    assert backend(ARROW_DEFAULT_MEMORY_POOL=pool) == pool
