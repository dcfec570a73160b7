"""`backfill`: a date-range request becomes one ingest message per (service, date).

Two entry points, one behaviour: the Pub/Sub-triggered `handle` (errors are
dead-lettered by `event_function`, never retried unless transient) and the HTTP
`handle_http`, which answers with the plan as JSON (400 for a bad request, 503
when publishing failed and a retry may succeed). Both publish unless `dry_run`.
"""

from __future__ import annotations

from typing import Any

from shared.core import logs
from shared.core.errors import ConfigError
from shared.core.events import pubsub_message
from shared.core.messages import message_fields, request_fields
from shared.core.runtime import event_function, http_error_response
from shared.core.settings import BACKFILL, Settings, get_settings
from shared.operate.backfill import outcome, run

HTTP_FUNCTION = "backfill_http"


@event_function(BACKFILL)
def handle(cloud_event: Any, settings: Settings) -> dict[str, Any]:
    fields = message_fields(pubsub_message(cloud_event))
    plan, published = run(fields, settings)
    return outcome(plan, published)


def handle_http(request: Any) -> Any:
    """POST a JSON body (or GET with query parameters) -> the plan, and how many were published."""
    try:
        settings = get_settings(BACKFILL)
        logs.set_level(settings.log_level)
        plan, published = run(request_fields(request), settings)
    except Exception as exc:  # the HTTP boundary: every failure becomes a structured response
        body, status = http_error_response(HTTP_FUNCTION, exc)
        return body, 500 if isinstance(exc, ConfigError) else status
    logs.info(**{"function": HTTP_FUNCTION, **outcome(plan, published)})
    return plan.as_dict(published), 200
