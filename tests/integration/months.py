"""Month files for the TLC server fixture (`tlc` in conftest.py) to serve."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from local.tlc_data import generate_month
from local.tlc_files import write_month
from tests.integration import stack_http


def serve_month(data_dir: Path, year: int, month: int, rows: int, seed: int = 3) -> pa.Table:
    """A generated yellow month at `rows`, where the server finds it; returns the table."""
    table = generate_month("yellow", year, month, rows=rows, seed=seed)
    (data_dir / "yellow").mkdir(exist_ok=True)
    write_month(data_dir / "yellow" / f"yellow_tripdata_{year}-{month:02d}.csv.gz", table, "csv.gz")
    return table


def stack_tlc_dir() -> Path:
    """Where the running stack's TLC server finds its files; skips unless the functions download from it."""
    template, tlc_url = os.environ.get("SOURCE_URL_TEMPLATE", ""), os.environ.get("TAXI_TLC_URL", "-")
    if not template.startswith(tlc_url):
        stack_http.unavailable(f"SOURCE_URL_TEMPLATE is not the stack's TLC server ({template})")
    return Path(os.environ["TAXI_STATE_DIR"]) / "tlc"


def forget(bucket, *prefixes: str) -> None:
    """Delete every object under the prefixes, so the stack's lake treats those dates as never seen."""
    for prefix in prefixes:
        for blob in bucket.list_blobs(prefix=prefix):
            blob.delete()
