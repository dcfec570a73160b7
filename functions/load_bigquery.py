"""`load_bigquery`: a finalized trips/ partition replaces that day in BigQuery."""

from __future__ import annotations

from typing import Any

from shared.bigquery_load import load_partition
from shared.loading import run_load
from shared.runtime import event_function
from shared.settings import LOAD_BIGQUERY, Settings


@event_function(LOAD_BIGQUERY)
def handle(cloud_event: Any, settings: Settings) -> dict[str, Any]:
    return run_load(cloud_event, settings, load_partition)
