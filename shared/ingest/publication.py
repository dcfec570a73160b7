"""When a 404 from the source means "not published yet" and when it is an error.

Why: TLC publishes a month about two months after it ends. The daily schedule asks for recent
dates long before their month exists, so a 404 for a recent month is the normal state of a
healthy deployment, not a failure: dead-lettering it made the dead-letter and freshness alerts
fire every day. A 404 for a month that ended long ago is still an error: the source lost it, or
the URL template is wrong.

The rule (README, Errors and retries): a month whose last day is fewer than SOURCE_GRACE_DAYS
days before today (New York) is *awaiting its source*: the date is acknowledged, recorded as
`awaiting_source` in the run ledger (status shows it; no dead letter, no ERROR log), and the
daily catch-up asks for it again until the source has it. From SOURCE_GRACE_DAYS days after the
month's end on, the same 404 is `source_not_found`: a dead letter, as before.
"""

from __future__ import annotations

import datetime as dt

AWAITING_REASON = "source_not_published"


def month_end(year: int, month: int) -> dt.date:
    first_next = dt.date(year + month // 12, month % 12 + 1, 1)
    return first_next - dt.timedelta(days=1)


def due_by(year: int, month: int, grace_days: int) -> dt.date:
    """The first day on which a 404 for this month is an error."""
    return month_end(year, month) + dt.timedelta(days=grace_days)


def awaiting(year: int, month: int, today: dt.date, grace_days: int) -> bool:
    """True when a 404 for this month still means "not published yet" (pure)."""
    return today < due_by(year, month, grace_days)
