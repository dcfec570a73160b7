"""The status function's HTTP request, parsed as strictly as the message contracts.

Why: the status range is bounded (BACKFILL_MAX_DATES) and every key is checked, so a typo
is a structured 400 naming the field, not a silent default or an unbounded read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.core.errors import ValidationError
from shared.core.messages import parse_date, parse_service, today_in_new_york

STATUS_KEYS = frozenset({"service", "start", "end", "format"})
FORMATS = ("json", "html", "text")


@dataclass(frozen=True)
class StatusRequest:
    service: str
    start: dt.date
    end: dt.date
    format: str = "json"


def parse_status_request(fields: Mapping[str, Any], max_dates: int, now: dt.datetime | None = None) -> StatusRequest:
    """service (default yellow), start and end (inclusive, required), format json|html|text."""
    unknown = sorted(set(fields) - STATUS_KEYS)
    if unknown:
        raise ValidationError(
            f"unknown key {unknown[0]!r}; allowed: {', '.join(sorted(STATUS_KEYS))}",
            field=unknown[0],
            value=fields[unknown[0]],
        )
    service = parse_service(fields.get("service", "yellow"))
    for key in ("start", "end"):
        if key not in fields:
            raise ValidationError(f"missing {key} date", field=key, value=None)
    today = today_in_new_york(now)
    start = parse_date(fields["start"], "start", service, today)
    end = parse_date(fields["end"], "end", service, today)
    if start > end:
        raise ValidationError(f"start is after end ({fields['end']})", field="start", value=fields["start"])
    count = (end - start).days + 1
    if count > max_dates:
        raise ValidationError(f"{count} dates exceed the maximum of {max_dates}", field="end", value=fields["end"])
    fmt = fields.get("format", "json")
    if fmt not in FORMATS:
        raise ValidationError(f"must be one of {', '.join(FORMATS)}", field="format", value=fmt)
    return StatusRequest(service, start, end, fmt)
