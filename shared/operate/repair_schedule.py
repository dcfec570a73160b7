"""The scheduled repair's own record of its last run, and when it runs next.

Why apart from shared/operate/repair.py: status reads it (to say when the next repair reaches a
date) and the repair writes it; the repair reads status, so the record sits below both. One
object, `runs/_repair/last.json` (outside every service's `runs/{service}/` prefix, so no ledger
listing sees it): when the repair ran and the schedule its message carried (Cloud Scheduler's
`repair_cron`, the local stack's `@every Ns`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from shared.core import ledger_record
from shared.core.schedule import parse_schedule

MARKER = "runs/_repair/last.json"


def write(bucket: Any, body: Mapping[str, Any]) -> None:
    bucket.blob(MARKER).upload_from_string(
        json.dumps(dict(body), default=str),
        content_type="application/json",
        timeout=ledger_record.WRITE_TIMEOUT_SECONDS,
    )


def read(bucket: Any) -> Any:
    """What the last run recorded (None when it never ran, or its record is unreadable)."""
    from google.api_core.exceptions import NotFound

    try:
        return json.loads(bucket.blob(MARKER).download_as_bytes(timeout=ledger_record.WRITE_TIMEOUT_SECONDS))
    except (NotFound, ValueError):
        return None


def next_repair(bucket: Any, now: dt.datetime) -> dt.datetime | None:
    """The scheduled repair's next run, from what its last run recorded; None when unknown."""
    return next_from_marker(read(bucket), now)


def ran_at(body: Any) -> dt.datetime | None:
    """Pure: when the marker's run ran (None if it says nothing readable)."""
    if not isinstance(body, Mapping) or not body.get("ran_at"):
        return None
    try:
        when = dt.datetime.fromisoformat(str(body["ran_at"]))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def next_from_marker(body: Any, now: dt.datetime) -> dt.datetime | None:
    """Pure: the marker's schedule and last run -> the next run after `now` (None if it has none)."""
    if not isinstance(body, Mapping) or not body.get("schedule"):
        return None
    try:
        schedule = parse_schedule(body["schedule"], body.get("time_zone") or "Etc/UTC")
    except ValueError:
        return None
    last = ran_at(body)
    return schedule.next_run(now, last) if last is not None else None
