"""The run ledger: what each attempt of each event function did for a (service, date).

Why: the lake, BigQuery and Postgres only say what is there. A date whose ingest is in
flight, or failing and being retried, looks exactly like a date nobody asked for; a
dead-lettered date looks the same too. So every attempt leaves a small record in the lake
bucket, `runs/{service}/pickup_date=D/{function}/{event id}.json` (shared/core/paths.py): one
object per (function, event), overwritten by each delivery of that event, so a date costs
a few small objects whatever the number of retries. No new server: it is GCS, locally
fake-gcs-server, and a lifecycle rule deletes it after `runs_delete_after_days`.

Written from one place, the function boundary (shared/core/runtime.py): `begin` when an event
arrives, `finish` with its outcome. The boundary cannot know the (service, date) before
the handler parsed the event, so handlers call `started(service, date)` once they know it;
that writes the `running` record. An event that never names a date (a backfill, an object
outside trips/) leaves no record. Per attempt: one read (the previous record: attempt
number and history) and two writes (running, then the outcome).

A record names the trips `generation` its delivery acted on (a loader's: its finalize event's;
ingest's: the one it wrote), so a republish can tell who never loaded it (shared/ingest/reannounce.py).

The record's summary is also in the object's custom metadata, so `status` reads a whole
range with one listing and no download (shared/core/ledger_read.py reads it). Bodies are
bounded (error messages truncated, a short history), because a record must stay a few KB whatever an error says.

A ledger write never changes the outcome of the work: any failure is logged (WARNING) and
swallowed.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import Any

from shared.core import logs
from shared.core.events import delivery_attempt, object_event
from shared.core.ledger_record import (
    MAX_HISTORY,
    QUEUED,
    RUNNING,
    WRITE_TIMEOUT_SECONDS,
    Run,
    record_body,
    record_metadata,
    short,
)
from shared.core.schemas import SERVICES

# --- writing: one Run per delivery, held by the boundary --------------------------------------------


_current: contextvars.ContextVar[Run | None] = contextvars.ContextVar("ledger_run", default=None)


def _event_ids(cloud_event: Any) -> tuple[str | None, str | None, int | None]:
    """(event id, Pub/Sub message id, deliveryAttempt) from a CloudEvent, each None when absent.

    functions-framework 3.10 drops a raw push body's `deliveryAttempt` when it converts it to a
    CloudEvent, so it is read from the request being served (events.delivery_attempt); Eventarc's
    deliveries carry none, and then the attempt is counted from the previous record.
    """
    attributes = cloud_event.get_attributes() if hasattr(cloud_event, "get_attributes") else {}
    event_id = attributes.get("id")
    data = getattr(cloud_event, "data", None)
    message_id = attempt = None
    if isinstance(data, Mapping):
        message = data.get("message")
        if isinstance(message, Mapping):
            message_id = message.get("messageId") or message.get("message_id")
        raw = data.get("deliveryAttempt")
        attempt = raw if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0 else None
    attempt = attempt or delivery_attempt()
    return (str(event_id) if event_id else None, str(message_id) if message_id else None, attempt)


def begin(function: str, cloud_event: Any, bucket_name: str | None) -> contextvars.Token:
    """The boundary starts a delivery; returns the token `end` needs."""
    try:
        event_id, message_id, delivery_attempt = _event_ids(cloud_event)
    except Exception:  # noqa: BLE001 - an odd event must not stop the work
        event_id = message_id = delivery_attempt = None
    try:  # a finalize event (the loaders') names the generation they act on
        finalized = object_event(cloud_event)
    except Exception:  # noqa: BLE001 - a malformed event is the handler's to reject
        finalized = None
    return _current.set(
        Run(
            function,
            event_id,
            message_id,
            delivery_attempt,
            bucket_name=bucket_name,
            generation=finalized.generation if finalized else None,
        )
    )


def end(token: contextvars.Token) -> None:
    _current.reset(token)


def current() -> Run | None:
    return _current.get()


def started(service: str, date: dt.date) -> None:
    """Handlers call this once they know what they work on: writes the `running` record.

    Outside the boundary (a library call, a benchmark) there is no run and nothing is written.
    """
    run = _current.get()
    if run is None or not run.bucket_name:
        return
    run.service, run.date = service, date

    def record() -> None:
        _read_previous(run)
        _write(run, RUNNING)

    _guarded(run, "running", record)


def finish(
    run: Run | None,
    outcome: str,
    *,
    reason: str | None = None,
    error: str | None = None,
    rows: Any = None,
    context: Mapping[str, Any] | None = None,
) -> None:
    """The boundary records the delivery's outcome (no-op when no (service, date) is known).

    A handler that failed before calling `started` may still name its date in the error's
    context; then the outcome is recorded under it.
    """
    if run is None or not run.bucket_name:
        return
    if run.name is None and context:
        service, day = context.get("service"), _as_date(context.get("date"))
        if service in SERVICES and day is not None:
            run.service, run.date = service, day
    if run.name is None:
        return

    def record() -> None:
        _read_previous(run)
        _write(run, outcome, reason, error, rows)

    _guarded(run, outcome, record)


def _as_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _guarded(run: Run, what: str, action: Any) -> None:
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - the ledger never fails the work it describes
        logs.warning(
            f"run ledger: writing the {what} record failed; the event's outcome is unchanged",
            function=run.function,
            service=run.service,
            date=run.date,
            object=run.name,
            event_id=run.event_id,
            error_message=short(f"{type(exc).__name__}: {exc}", 300),
        )


def _bucket(run: Run) -> Any:
    if run.bucket is None:
        from shared.core import clients

        run.bucket = clients.storage().bucket(run.bucket_name)
    return run.bucket


def _read_previous(run: Run) -> None:
    """Once per delivery: the attempt number and the history of earlier deliveries of this event."""
    if run.previous_read:
        return
    run.previous_read = True
    from google.api_core.exceptions import NotFound

    previous: dict[str, Any] = {}
    try:
        previous = json.loads(_bucket(run).blob(run.name).download_as_bytes(timeout=WRITE_TIMEOUT_SECONDS))
    except NotFound:
        pass
    except ValueError:  # unreadable: start afresh rather than fail
        previous = {}
    counted = int(previous.get("attempt") or 0) + 1 if isinstance(previous, dict) and previous else 1
    run.attempt = run.delivery_attempt or counted
    if isinstance(previous, dict) and previous.get("outcome"):
        earlier = [h for h in previous.get("history") or [] if isinstance(h, dict)]
        earlier.append({k: previous.get(k) for k in ("attempt", "outcome", "reason", "started_at", "finished_at")})
        run.history = earlier[-MAX_HISTORY:]


def _write(
    run: Run,
    outcome: str,
    reason: str | None = None,
    error: str | None = None,
    rows: Any = None,
    now: dt.datetime | None = None,
) -> None:
    body = record_body(run, outcome, reason, error, rows, now)
    blob = _bucket(run).blob(run.name)
    blob.metadata = record_metadata(body)
    blob.upload_from_string(
        json.dumps(body, default=str, separators=(",", ":")),
        content_type="application/json",
        timeout=WRITE_TIMEOUT_SECONDS,
    )


def queued(
    bucket_name: str | None,
    function: str,
    published: Iterable[tuple[str, dt.date, str]],
    queued_at: dt.datetime,
    workers: int = 16,
) -> int:
    """Record `queued` for each (service, date, ingest message id) a function published.

    Why: between the publish and the delivery of an ingest message nothing else says the date was
    asked for, so status would call it `missing`. One small create per date (a new object named
    after the new message id: no read, no overwrite), in parallel, each guarded like every ledger
    write: a failure is logged and never fails the publisher. `queued_at` is taken before the
    publish, so the ingest's own records (written after delivery) are always newer and supersede
    it. Returns how many were written.
    """
    if not bucket_name:
        return 0
    runs = [
        Run(
            function,
            message_id,
            message_id,
            None,
            bucket_name=bucket_name,
            service=service,
            date=day,
            started_at=queued_at,
        )
        for service, day, message_id in published
    ]
    from concurrent.futures import ThreadPoolExecutor

    def write(run: Run) -> bool:
        done: list[bool] = []

        def record() -> None:
            _write(run, QUEUED, now=queued_at)
            done.append(True)

        _guarded(run, QUEUED, record)
        return bool(done)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(runs)))) as pool:
        return sum(pool.map(write, runs))
