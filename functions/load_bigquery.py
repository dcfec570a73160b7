"""`load_bigquery`: a finalized trips/ partition replaces that day in BigQuery."""

from __future__ import annotations

from typing import Any

from shared.core.runtime import event_function
from shared.core.settings import LOAD_BIGQUERY, Settings
from shared.load.bigquery import load_partition
from shared.load.partition import run_load


@event_function(LOAD_BIGQUERY)
def handle(cloud_event: Any, settings: Settings) -> dict[str, Any]:
    return run_load(cloud_event, settings, load_partition)
