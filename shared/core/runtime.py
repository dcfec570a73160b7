"""The function boundary: one place that turns outcomes and errors into ack, retry or dead letter.

Cloud Functions' event retry model: returning acknowledges the event, raising
makes the platform deliver it again. So:
- success -> one INFO outcome log, return;
- PermanentError (bad input, bad data, failed checks) -> one ERROR log, the
  original event published to the dead-letter topic, return (never retried);
- anything else is classified; transient errors are raised for a retry, unless
  this is the push subscription's last delivery attempt (MAX_DELIVERY_ATTEMPTS) or
  the event is older than MAX_EVENT_AGE_SECONDS: then it is dead-lettered here, with
  its reason, so no event is retried forever and none ends as Pub/Sub's raw copy.
If the dead letter itself cannot be published, the error is raised: the event is
retried rather than lost.

Every delivery that names a (service, date) also leaves its record in the run ledger
(shared/core/ledger.py): the boundary opens the run, the handler calls `ledger.started` once it
knows the date, and the boundary writes the outcome (succeeded, skipped_up_to_date,
retrying, dead_lettered) right before it acks or raises. Ledger writes never change that
decision.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from shared.core import clients, heap, ledger, ledger_record, logs
from shared.core.errors import ConfigError, PermanentError, PipelineError, TransientError, classify
from shared.core.events import delivery_attempt, event_time
from shared.core.settings import Settings, get_settings

Handler = Callable[[Any, Settings], Mapping[str, Any]]
MAX_DEAD_LETTER_BYTES = 1_000_000  # Pub/Sub takes 10 MB, but pull clients often only 4 MB: keep letters small


def _event_record(cloud_event: Any) -> dict[str, Any]:
    attributes = dict(cloud_event.get_attributes()) if hasattr(cloud_event, "get_attributes") else {}
    return {"attributes": {k: str(v) for k, v in attributes.items()}, "data": cloud_event.data}


def dead_letter(
    function: str, settings: Settings, error: PipelineError, cloud_event: Any, context: Mapping[str, Any]
) -> str:
    """Publish the original event and the reason; returns the dead letter's message id."""
    body: dict[str, Any] = {
        "function": function,
        "reason": error.reason,
        "error": error.as_dict(),
        "context": dict(context),
        "event": _event_record(cloud_event),
        "dead_lettered_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    data = json.dumps(body, default=str).encode()
    if len(data) > MAX_DEAD_LETTER_BYTES:
        body["event"] = _stored_event(function, settings, cloud_event, body["event"])
        data = json.dumps(body, default=str).encode()
    future = clients.publisher().publish(
        clients.topic_path(settings.dead_letter_topic, settings.project), data, function=function, reason=error.reason
    )
    return future.result(timeout=60)


def _stored_event(function: str, settings: Settings, cloud_event: Any, record: dict[str, Any]) -> dict[str, Any]:
    """An original event too large for a dead letter (over 1 MB, base64-encoded
    inside the event) is kept whole in the lake, and the dead letter points at it."""
    attributes = record.get("attributes", {})
    if not settings.lake_bucket:  # backfill without a lake: keep what fits, say so
        return {
            "attributes": attributes,
            "truncated": True,
            "data_preview": json.dumps(record.get("data"), default=str)[:10_000],
        }
    name = f"quarantine/events/{function}/{uuid.uuid4().hex}.json"
    clients.storage().bucket(settings.lake_bucket).blob(name).upload_from_string(
        json.dumps(record, default=str), content_type="application/json"
    )
    return {"attributes": attributes, "stored_at": f"gs://{settings.lake_bucket}/{name}"}


def _age_seconds(cloud_event: Any) -> float | None:
    produced = event_time(cloud_event)
    if produced is None:
        return None
    return (dt.datetime.now(dt.UTC) - produced).total_seconds()


def event_function(function: str) -> Callable[[Handler], Callable[[Any], None]]:
    """Wrap a CloudEvent handler `(cloud_event, settings) -> outcome fields` with the error policy.

    Handlers attach `context={"service": ..., "date": ...}` to the errors they
    raise, so that failure logs and dead letters name what was being processed.
    """

    def decorate(handler: Handler) -> Callable[[Any], None]:
        @functools.wraps(handler)
        def entry_point(cloud_event: Any) -> None:
            heap.before_delivery()
            try:
                _deliver(cloud_event)
            finally:
                heap.after_delivery()  # the delivery's garbage, freed before the next (shared/core/heap.py)

        def _deliver(cloud_event: Any) -> None:
            started = time.perf_counter()
            try:
                settings = get_settings(function)
            except ConfigError as exc:
                logs.error("invalid configuration", function=function, **exc.as_dict())
                raise  # nothing can be processed, not even dead-lettered: retry until fixed
            logs.set_level(settings.log_level)
            token = ledger.begin(function, cloud_event, settings.lake_bucket)
            try:
                try:
                    outcome = dict(handler(cloud_event, settings) or {})
                except Exception as exc:  # the one boundary where foreign errors are translated
                    _handle_failure(function, settings, cloud_event, exc, started)
                    return
                _record_success(outcome)
            finally:
                ledger.end(token)
            severity = outcome.pop("severity", "INFO")
            message = outcome.pop("message", f"{function} done")
            logs.log(
                severity,
                message,
                function=function,
                seconds=round(time.perf_counter() - started, 3),
                event_id=_event_id(cloud_event),
                **outcome,
            )

        return entry_point

    return decorate


def _record_success(outcome: Mapping[str, Any]) -> None:
    """succeeded, skipped_up_to_date (ingest: partition current; loaders: a stale event), or
    awaiting_source (ingest: the month is not published at the source yet; not an error)."""
    skipped = outcome.get("skipped")
    rows = outcome.get("rows_written", outcome.get("rows"))
    if outcome.get("awaiting_source"):
        ledger.finish(
            ledger.current(),
            ledger_record.AWAITING_SOURCE,
            reason=str(outcome.get("reason") or ledger_record.AWAITING_SOURCE),
            error=f"{outcome.get('source_url')} is not published yet; a 404 is an error from {outcome.get('due_by')}",
        )
    elif skipped:
        ledger.finish(
            ledger.current(), ledger_record.SKIPPED, reason="up_to_date" if skipped is True else str(skipped), rows=rows
        )
    else:
        ledger.finish(ledger.current(), ledger_record.SUCCEEDED, rows=rows)


def _event_id(cloud_event: Any) -> str | None:
    attributes = cloud_event.get_attributes() if hasattr(cloud_event, "get_attributes") else {}
    return attributes.get("id")


def _handle_failure(function: str, settings: Settings, cloud_event: Any, exc: Exception, started: float) -> None:
    error = classify(exc)
    context = dict(error.details.get("context") or {})
    fields = {**context, **{k: v for k, v in error.as_dict().items() if k != "context"}}
    # `message` is logs.log's positional parameter: passing it as a field raised TypeError.
    fields["error_message"] = fields.pop("message", None)
    fields.update(function=function, event_id=_event_id(cloud_event), seconds=round(time.perf_counter() - started, 3))
    run = ledger.current()
    if isinstance(error, TransientError):
        age = _age_seconds(cloud_event)
        attempt = delivery_attempt()
        last = (
            bool(settings.max_delivery_attempts) and attempt is not None and attempt >= settings.max_delivery_attempts
        )
        if last:
            error = PermanentError(
                f"gave up after {attempt} delivery attempts: {error.message}",
                reason="retries_exhausted",
                last_reason=error.reason,
                attempts=attempt,
            )
            fields.update(reason=error.reason, error_message=error.message)
        elif age is None or age <= settings.max_event_age_seconds:
            logs.warning(f"{function} failed, will be retried: {error.message}", event_age_seconds=age, **fields)
            ledger.finish(run, ledger_record.RETRYING, reason=error.reason, error=error.message, context=context)
            raise error from exc
        else:
            error = PermanentError(
                f"gave up after {int(age)} s of retries: {error.message}",
                reason="max_event_age_exceeded",
                last_reason=error.reason,
            )
            fields.update(reason=error.reason, error_message=error.message)
    if not isinstance(error, PermanentError):  # pragma: no cover - classify returns one of the two
        raise exc
    if error.reason == "unexpected" or not isinstance(exc, PipelineError):
        fields["traceback"] = traceback.format_exception_only(type(exc), exc)[-1].strip()
    try:
        dead_letter_id = dead_letter(function, settings, error, cloud_event, context)
    except Exception as publish_exc:  # raised: the platform redelivers rather than lose the event
        ledger.finish(
            run,
            ledger_record.RETRYING,
            reason="dead_letter_failed",
            error=f"{error.reason}: {type(publish_exc).__name__}: {publish_exc}",
            context=context,
        )
        raise
    ledger.finish(run, ledger_record.DEAD_LETTERED, reason=error.reason, error=error.message, context=context)
    logs.error(f"{function} rejected the event: {error.message}", dead_letter_id=dead_letter_id, **fields)


def http_error_response(function: str, exc: Exception) -> tuple[dict[str, Any], int]:
    """HTTP entry points: permanent -> 400 with the structured error, transient -> 503."""
    error = classify(exc)
    status = 400 if isinstance(error, PermanentError) else 503
    fields = {k: v for k, v in error.as_dict().items() if k != "message"}  # see _handle_failure
    logs.log(
        "WARNING" if status == 400 else "ERROR",
        f"{function} request failed: {error.message}",
        function=function,
        **fields,
    )
    return error.as_dict(), status
