"""The run ledger's records: their outcomes, their bounds and their stored form.

Why apart from the writer (shared/core/ledger.py, which follows a delivery through the function
boundary) and the reader (shared/core/ledger_read.py): both agree on this vocabulary, and the
stored form (a bounded JSON body, its summary in the object's metadata) is pure, so it is
unit-tested from plain data.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.core import paths

RUNNING, SUCCEEDED, SKIPPED = "running", "succeeded", "skipped_up_to_date"
RETRYING, DEAD_LETTERED = "retrying", "dead_lettered"
QUEUED = "queued"  # written by backfill for each ingest message it published (see `queued`)
# ingest found the month not published at the source yet (a 404 within SOURCE_GRACE_DAYS of the
# month's end): not an error, acknowledged, no dead letter (shared/ingest/publication.py)
AWAITING_SOURCE = "awaiting_source"
OUTCOMES = (QUEUED, RUNNING, SUCCEEDED, SKIPPED, RETRYING, DEAD_LETTERED, AWAITING_SOURCE)
QUEUED_FOR = "ingest"  # the function whose first record supersedes a queued one
# Read, never written: a `queued` record older than the longest possible delivery of its message.
UNDELIVERED = "undelivered"
REPAIR = "repair"  # the ledger-driven repair's one record per date (shared/operate/repair.py)
REPAIR_EVENT = "attempts"  # ...named runs/{service}/pickup_date=D/repair/attempts.json

MAX_ERROR_CHARS = 500  # in the body; the metadata copy is shorter
MAX_META_ERROR_CHARS = 200
MAX_HISTORY = 5  # earlier attempts kept in a record, newest last
MAX_BODY_BYTES = 4096
# A `running` record older than this had its attempt end without an outcome (the function's
# 540 s timeout, out of memory, a crash): the platform redelivers, so it reads as retrying.
LOST_AFTER_SECONDS = 600
# The longest a published message can take to reach its function: every attempt of Terraform's push
# retry policy (max_delivery_attempts, 10 by default) held for the full ack deadline (600 s) and then backed off
# for the longest backoff (600 s). A `queued` record older than this can no longer be delivered
# (the message was lost, or dead-lettered unseen): it reads as `undelivered`.
PUSH_ATTEMPTS, PUSH_ACK_DEADLINE_SECONDS, PUSH_MAX_BACKOFF_SECONDS = 10, 600, 600
UNDELIVERED_AFTER_SECONDS = PUSH_ATTEMPTS * (PUSH_ACK_DEADLINE_SECONDS + PUSH_MAX_BACKOFF_SECONDS)
WRITE_TIMEOUT_SECONDS = 15


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def short(text: Any, limit: int) -> str | None:
    if text is None:
        return None
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Run:
    """One delivery of one event to one function, as the boundary sees it."""

    function: str
    event_id: str | None
    message_id: str | None
    delivery_attempt: int | None  # Pub/Sub's count when the platform passes it on, else None
    bucket: Any = None  # the lake bucket, made lazily (a ledger problem must not fail the event)
    bucket_name: str | None = None
    service: str | None = None
    date: dt.date | None = None
    attempt: int = 1
    started_at: dt.datetime = field(default_factory=_now)
    history: list[dict[str, Any]] = field(default_factory=list)
    previous_read: bool = False
    generation: int | None = None  # the trips generation acted on: its finalize event's, or what ingest wrote

    @property
    def name(self) -> str | None:
        if self.service is None or self.date is None:
            return None
        return paths.run_record(self.service, self.date, self.function, self.event_id)


def record_body(
    run: Run,
    outcome: str,
    reason: str | None = None,
    error: str | None = None,
    rows: Any = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The record as stored: the latest state of this event, and a short history of earlier attempts."""
    now = now or _now()
    body: dict[str, Any] = {
        "function": run.function,
        "service": run.service,
        "date": run.date.isoformat() if run.date else None,
        "event_id": short(run.event_id, 100),
        "message_id": short(run.message_id, 100),
        "attempt": run.attempt,
        "outcome": outcome,
        "reason": short(reason, 100),
        "generation": run.generation,
        "error": short(error, MAX_ERROR_CHARS),
        "rows": as_int(rows),
        "started_at": run.started_at.isoformat(),
        "finished_at": None if outcome in (RUNNING, QUEUED) else now.isoformat(),
        "updated_at": now.isoformat(),
        "history": list(run.history),
    }
    while len(json.dumps(body, default=str)) > MAX_BODY_BYTES and body["history"]:
        body["history"] = body["history"][1:]  # oldest first out
    return body


def record_metadata(body: Mapping[str, Any]) -> dict[str, str]:
    """What a listing returns with each object: enough for `status`, no download needed."""
    meta = {
        "outcome": body["outcome"],
        "attempt": str(body["attempt"]),
        "updated_at": body["updated_at"],
        "started_at": body["started_at"],
    }
    for key in ("reason", "rows", "message_id", "generation"):
        if body.get(key) is not None:
            meta[key] = str(body[key])
    if body.get("error"):
        meta["error"] = short(body["error"], MAX_META_ERROR_CHARS)
    return meta


def as_int(value: Any) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None
