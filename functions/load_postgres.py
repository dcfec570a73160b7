"""`load_postgres`: a finalized trips/ partition replaces that day in Cloud SQL PostgreSQL."""

from __future__ import annotations

from typing import Any

from shared.core.runtime import event_function
from shared.core.settings import LOAD_POSTGRES, Settings
from shared.load.partition import run_load
from shared.load.postgres import load_partition


@event_function(LOAD_POSTGRES)
def handle(cloud_event: Any, settings: Settings) -> dict[str, Any]:
    return run_load(cloud_event, settings, load_partition)
