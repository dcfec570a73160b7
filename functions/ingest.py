"""`ingest`: a date message on the ingest topic becomes that day's parquet partition in the lake."""

from __future__ import annotations

from typing import Any

from shared.core import clients, ledger
from shared.core.coverage import check_served
from shared.core.errors import PipelineError
from shared.core.events import pubsub_message
from shared.core.messages import parse_ingest
from shared.core.runtime import event_function
from shared.core.settings import INGEST, Settings
from shared.ingest.day import ingest


@event_function(INGEST)
def handle(cloud_event: Any, settings: Settings) -> dict[str, Any]:
    message = pubsub_message(cloud_event)
    request = parse_ingest(message, settings.ingest_lag_days)
    try:
        # A month the source can never serve is refused here, before any download (unsupported_month).
        check_served(request.service, request.date, settings.source_url_template)
        ledger.started(request.service, request.date)  # the run ledger's `running` record
        return ingest(clients.storage().bucket(settings.lake_bucket), request, settings)
    except PipelineError as exc:
        exc.details.setdefault("context", {"service": request.service, "date": request.date.isoformat()})
        raise
