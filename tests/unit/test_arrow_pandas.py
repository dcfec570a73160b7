"""What a function instance imports: only its own module, and never pandas where nothing uses it.

Each probe runs in a fresh interpreter, as an instance starts (shared/core/arrow_pandas.py, main.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# A month split and one day's binary COPY encoding, the work of ingest and of the Postgres loader.
WORK = """
import io, json, sys
import main
from local.tlc_data import generate_month
from local.tlc_files import write_csv
import pyarrow as pa
from shared.core.schemas import columns
from shared.ingest.cleaning import Rules
from shared.ingest.lake import split_month
from shared.load.pg_binary import copy_chunks

sink = pa.BufferOutputStream()
write_csv(generate_month("yellow", 2021, 1, rows=20_000, seed=5), sink)
month = split_month(io.BytesIO(sink.getvalue().to_pybytes()), "csv", "yellow", 2021, 1, Rules())
day = sorted(month.days)[3]
trips, _ = month.tables(day)
encoded = sum(len(chunk) for chunk in copy_chunks(trips, list(columns("yellow")), 1000))
print(json.dumps({"rows": trips.num_rows, "encoded": encoded, "pandas": "pandas" in sys.modules}))
"""


def probe(code: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k != "FUNCTION_TARGET"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env={**clean, **env}, capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_month_split_and_a_postgres_encoding_never_import_pandas():
    seen = probe(WORK)
    assert seen["rows"] > 0 and seen["encoded"] > 0
    assert seen["pandas"] is False


def test_pandas_still_works_when_code_asks_for_it():
    seen = probe(
        "import json, sys, main, shared.core.columns, pyarrow as pa\n"
        "frame = pa.table({'a': [1, 2]}).to_pandas()\n"
        "back = pa.Table.from_pandas(frame)\n"
        "print(json.dumps({'type': type(frame).__name__, 'rows': back.num_rows, 'pandas': 'pandas' in sys.modules}))"
    )
    assert seen == {"type": "DataFrame", "rows": 2, "pandas": True}


LOADED = (
    "import json, sys, main\n"
    "print(json.dumps({'functions': sorted(m for m in sys.modules if m.startswith('functions.')),\n"
    "                  'bigquery': 'google.cloud.bigquery' in sys.modules, 'pandas': 'pandas' in sys.modules}))"
)


@pytest.mark.parametrize(
    ("target", "module"),
    [
        ("ingest", "functions.ingest"),
        ("load_postgres", "functions.load_postgres"),
        ("backfill", "functions.backfill"),
        ("backfill_http", "functions.backfill"),
        ("load_bigquery", "functions.load_bigquery"),
    ],
)
def test_an_instance_imports_only_the_function_it_serves(target, module):
    """functions-framework sets FUNCTION_TARGET before it imports main.py. Only the BigQuery
    loader imports google-cloud-bigquery (which imports pandas itself, when installed)."""
    seen = probe(LOADED, FUNCTION_TARGET=target)
    assert seen["functions"] == [module]
    if target != "load_bigquery":
        assert seen["bigquery"] is False and seen["pandas"] is False


def test_every_entry_point_reaches_its_function_module():
    import main

    public = [name for name in vars(main) if callable(getattr(main, name)) and not name.startswith("_")]
    entry_points = [name for name in public if getattr(getattr(main, name), "__module__", "") == "main"]
    assert sorted(entry_points) == sorted(main._MODULES)
    for name in entry_points:
        module = main._function(name)
        assert callable(getattr(module, "handle_http" if name in ("backfill_http", "status") else "handle"))
