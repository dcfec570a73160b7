"""Month files for the TLC server fixture (`tlc` in conftest.py) to serve."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from local.tlc_data import generate_month
from local.tlc_files import write_month


def serve_month(data_dir: Path, year: int, month: int, rows: int, seed: int = 3) -> pa.Table:
    """A generated yellow month at `rows`, where the server finds it; returns the table."""
    table = generate_month("yellow", year, month, rows=rows, seed=seed)
    (data_dir / "yellow").mkdir(exist_ok=True)
    write_month(data_dir / "yellow" / f"yellow_tripdata_{year}-{month:02d}.csv.gz", table, "csv.gz")
    return table
