"""Reading the run ledger (shared/core/ledger.py writes it): one listing per (service, range).

Why apart from the writer: the writer runs inside every function at its boundary; the readers
are status, a plain republish's re-announce decision, and people's tools, which need the
records' summaries (from object metadata, no download) and a few rules to interpret them (a
`running` record with no outcome for too long reads as retrying; a `queued` record is
superseded by ingest's first record).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from shared.core import paths
from shared.core.events import parse_timestamp
from shared.core.ledger_record import (
    AWAITING_SOURCE,
    DEAD_LETTERED,
    LOST_AFTER_SECONDS,
    OUTCOMES,
    QUEUED,
    QUEUED_FOR,
    RETRYING,
    RUNNING,
    UNDELIVERED,
    UNDELIVERED_AFTER_SECONDS,
    WRITE_TIMEOUT_SECONDS,
    as_int,
)


@dataclass(frozen=True)
class RunRecord:
    """The latest state of one (function, event) on one date, as its object's metadata tells it."""

    function: str
    event_id: str
    outcome: str
    attempt: int
    reason: str | None = None
    error: str | None = None
    rows: int | None = None
    updated_at: dt.datetime | None = None
    generation: int | None = None  # the trips generation the delivery acted on; None in older records
    object_generation: int | None = None  # the record object's own (a conditioned delete of it)

    def as_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "event_id": self.event_id,
            "outcome": self.outcome,
            "attempt": self.attempt,
            "reason": self.reason,
            "error": self.error,
            "rows": self.rows,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "generation": self.generation,
        }

    def describe(self) -> str:
        """One line for people: `ingest retrying, attempt 3 (download_failed)`."""
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.function} {self.outcome}, attempt {self.attempt}{why}"


def read_runs(bucket: Any, service: str, start: dt.date, end: dt.date) -> dict[dt.date, list[RunRecord]]:
    """Every run record of start..end, by date, from one listing bounded by start/end offsets."""
    prefix, start_offset, end_offset = paths.runs_range(service, start, end)
    blobs = bucket.list_blobs(prefix=prefix, start_offset=start_offset, end_offset=end_offset)
    return _by_date(blobs, service, lambda day: start <= day <= end)


def read_all_runs(bucket: Any, service: str) -> dict[dt.date, list[RunRecord]]:
    """Every run record of the service, whatever its date: one listing of `runs/{service}/`.

    Why it stays cheap over a 10-year history: the ledger keeps only recent records (the lake's
    lifecycle rule deletes `runs/` after `runs_delete_after_days`), so this lists what ran lately,
    a few objects per date touched, never the calendar."""
    blobs = bucket.list_blobs(prefix=paths.prefix("runs", service))
    return _by_date(blobs, service, lambda day: True)


def _by_date(blobs: Iterable[Any], service: str, wanted: Any) -> dict[dt.date, list[RunRecord]]:
    found: dict[dt.date, list[RunRecord]] = {}
    for blob in blobs:
        name = paths.parse_run_record(blob.name)
        if name is None or name.service != service or not wanted(name.date):
            continue
        meta = blob.metadata or {}
        outcome = meta.get("outcome")
        if outcome not in OUTCOMES:
            continue
        updated = parse_timestamp(meta.get("updated_at")) or getattr(blob, "updated", None)
        found.setdefault(name.date, []).append(
            RunRecord(
                name.function,
                name.event_id,
                outcome,
                as_int(meta.get("attempt")) or 1,
                meta.get("reason"),
                meta.get("error"),
                as_int(meta.get("rows")),
                updated,
                as_int(meta.get("generation")),
                getattr(blob, "generation", None),
            )
        )
    return found


def latest_by_function(records: Iterable[RunRecord]) -> list[RunRecord]:
    """Each function's newest record on a date (a later event supersedes an earlier one's fate)."""
    latest: dict[str, RunRecord] = {}
    oldest = dt.datetime.min.replace(tzinfo=dt.UTC)
    for record in records:
        held = latest.get(record.function)
        if held is None or (record.updated_at or oldest) >= (held.updated_at or oldest):
            latest[record.function] = record
    return sorted(latest.values(), key=lambda r: r.function)


def effective(record: RunRecord, now: dt.datetime) -> RunRecord:
    """A `running` record left behind by an attempt that ended without an outcome reads as retrying;
    a `queued` one older than the longest possible delivery of its message reads as undelivered."""
    if record.updated_at is None:
        return record
    if record.outcome == QUEUED and (now - record.updated_at).total_seconds() > UNDELIVERED_AFTER_SECONDS:
        return replace(
            record,
            outcome=UNDELIVERED,
            reason="message_not_delivered",
            error=f"its ingest message was published {record.updated_at:%Y-%m-%d %H:%M} UTC and never delivered "
            f"within the longest possible delivery ({UNDELIVERED_AFTER_SECONDS} s): it can no longer arrive",
        )
    if record.outcome != RUNNING:
        return record
    if (now - record.updated_at).total_seconds() <= LOST_AFTER_SECONDS:
        return record
    return replace(
        record,
        outcome=RETRYING,
        reason="no_outcome",
        error=f"attempt {record.attempt} recorded no outcome within {LOST_AFTER_SECONDS} s "
        "(timeout, out of memory or crash); the platform redelivers it",
    )


_PRIORITY = {RUNNING: 0, RETRYING: 1, QUEUED: 2, UNDELIVERED: 3, DEAD_LETTERED: 4, AWAITING_SOURCE: 5}


def in_flight(records: Iterable[RunRecord], now: dt.datetime) -> RunRecord | None:
    """What the ledger says beyond the counts: the record of a date that is running, retrying,
    queued, dead-lettered or awaiting its source (in that order of precedence: work under way
    matters more than a past failure or a month not published yet), from each function's latest
    record; None when every function's latest attempt succeeded. A `queued` record is superseded
    by any ingest record at or after it (the message it queued was delivered)."""
    records = list(records)
    oldest = dt.datetime.min.replace(tzinfo=dt.UTC)
    ingest_seen = max(((r.updated_at or oldest) for r in records if r.function == QUEUED_FOR), default=None)
    candidates = [effective(r, now) for r in latest_by_function(records)]
    candidates = [
        r
        for r in candidates
        if r.outcome in _PRIORITY
        and not (
            r.outcome in (QUEUED, UNDELIVERED) and ingest_seen is not None and ingest_seen >= (r.updated_at or oldest)
        )
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda r: (_PRIORITY[r.outcome], -(r.updated_at or oldest).timestamp()))


def read_date(bucket: Any, service: str, day: dt.date) -> list[dict[str, Any]]:
    """Every record of one date, whole (one download each: a date has a few), oldest attempt first.

    For people (`./local_emulator.sh runs DATE`): unlike `read_runs` it returns the bodies, with
    the earlier attempts each record keeps under `history`. Unreadable records are skipped.
    """
    prefix, start_offset, end_offset = paths.runs_range(service, day, day)
    records = []
    for blob in bucket.list_blobs(prefix=prefix, start_offset=start_offset, end_offset=end_offset):
        if paths.parse_run_record(blob.name) is None:
            continue
        try:
            body = json.loads(blob.download_as_bytes(timeout=WRITE_TIMEOUT_SECONDS))
        except ValueError:
            continue
        if isinstance(body, dict):
            records.append(body)
    return sorted(records, key=lambda r: (str(r.get("started_at") or ""), str(r.get("function") or "")))
