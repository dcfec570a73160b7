"""Freshness measured against what the source has published, not against the calendar.

Why: TLC publishes a month about two months after it ends, so "no day loaded in the last 24 hours"
was the normal state of a correct deployment for weeks at a time, and the calendar-based alert
fired every day. The daily catch-up (a `catch_up` backfill over the last `catch_up_days`) reads
the status of every date it covers before it publishes, and from that judges each service:

- a date the source has not published yet is `awaiting_source` (ingest saw its 404 within
  SOURCE_GRACE_DAYS of the month's end, shared/ingest/publication.py): not behind;
- a date never asked for (`missing`) is asked for now, and one in flight is on its way: not behind;
- a date that was asked for and is not loaded for another reason (`dead_lettered`, `failed`,
  `partial`, `mismatch`, `undelivered`) is behind what the source has: the source had it (or
  should have, past the grace period), and the previous catch-up, a day ago, asked for it.

So a healthy deployment is `up_to_date` every day whatever the publication delay, and the first
catch-up after TLC publishes a month loads it; if that load fails, the next catch-up finds the
month's dates behind. One line per service is logged (INFO `source freshness: up to date with the
source`, WARNING `source freshness: behind the source`), and a log-based metric counts them by
verdict (infra/terraform/monitoring.tf): the alert fires on a `behind` line, or when no line came
for a service in 26 hours (the catch-up did not run). Pure: a report's dates in, fields out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.operate.heal import AWAITING_SOURCE, COMPLETE, DEAD_LETTERED, FAILED, MISMATCH, PARTIAL, UNDELIVERED

BEHIND_STATES = frozenset({DEAD_LETTERED, FAILED, PARTIAL, MISMATCH, UNDELIVERED})
UP_TO_DATE, BEHIND = "up_to_date", "behind"
MESSAGES = {UP_TO_DATE: "source freshness: up to date with the source", BEHIND: "source freshness: behind the source"}
MAX_LISTED = 10


def judge(service: str, days: Iterable[Any]) -> dict[str, Any]:
    """The freshness of one service from its dates' status (objects with `date`, `state`,
    `lake_rows`): the fields of its log line, `verdict` first."""
    days = sorted(days, key=lambda d: d.date)
    behind = [d for d in days if d.state in BEHIND_STATES]
    read = [d for d in days if d.lake_rows is not None]  # ingest read the month's file: the source has it
    complete = [d for d in days if d.state == COMPLETE]
    verdict = BEHIND if behind else UP_TO_DATE
    return {
        "message": MESSAGES[verdict],
        "severity": "WARNING" if behind else "INFO",
        "verdict": verdict,
        "service": service,
        "start": days[0].date.isoformat() if days else None,
        "end": days[-1].date.isoformat() if days else None,
        "dates_behind": len(behind),
        "behind": [f"{d.date.isoformat()} {d.state}" for d in behind[:MAX_LISTED]] or None,
        "dates_awaiting_source": sum(d.state == AWAITING_SOURCE for d in days),
        "newest_month_at_source": f"{read[-1].date:%Y-%m}" if read else None,
        "newest_date_loaded": complete[-1].date.isoformat() if complete else None,
    }
