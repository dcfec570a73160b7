"""A job's schedule, as the job's own message states it: when will it run next?

Why: status tells a person when the scheduled repair will reach a date. The schedule lives in one
place, the scheduler (Terraform's `repair_cron` in Google Cloud, the local stack's interval), and
the repair message carries it (`"schedule"`, `"time_zone"`); the repair run keeps it beside the
time it ran (shared/operate/repair.py), and status computes the next run from that, purely.

Two forms: a five-field cron expression as Cloud Scheduler takes it (`17 * * * *`: numbers,
`*`, ranges `a-b`, steps `*/n` or `a-b/n`, lists `a,b`; day-of-month and day-of-week OR-ed when
both are restricted, as cron does), or `@every Ns` (the local stack's interval).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.core.errors import ValidationError

_EVERY = re.compile(r"@every (\d{1,6})s")
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))  # minute hour day month weekday (0 and 7: Sunday)
MAX_LOOKAHEAD_DAYS = 366 * 5  # 29 February on a Monday comes back within 28 years; cron users mean sooner


@dataclass(frozen=True)
class Schedule:
    text: str
    time_zone: str = "Etc/UTC"
    every_seconds: int | None = None
    fields: tuple[frozenset[int], ...] = ()
    restricted: tuple[bool, bool] = (False, False)  # day-of-month, day-of-week

    def as_dict(self) -> dict[str, str]:
        return {"schedule": self.text, "time_zone": self.time_zone}

    def next_run(self, after: dt.datetime, last_run: dt.datetime | None = None) -> dt.datetime | None:
        """The first run strictly after `after` (aware, UTC); `@every` counts from `last_run`."""
        if self.every_seconds is not None:
            start = last_run or after
            step = dt.timedelta(seconds=self.every_seconds)
            runs = max(1, int((after - start) / step) + 1)
            return start + runs * step
        zone = ZoneInfo(self.time_zone)
        local = after.astimezone(zone).replace(second=0, microsecond=0, tzinfo=None) + dt.timedelta(minutes=1)
        minutes, hours, days, months, weekdays = self.fields
        day = local.date()
        for _ in range(MAX_LOOKAHEAD_DAYS):
            if day.month in months and self._day_matches(day, days, weekdays):
                for hour in sorted(hours):
                    for minute in sorted(minutes):
                        candidate = dt.datetime.combine(day, dt.time(hour, minute))
                        if candidate >= local:
                            return candidate.replace(tzinfo=zone).astimezone(dt.UTC)
            day += dt.timedelta(days=1)
            local = dt.datetime.combine(day, dt.time())
        return None

    def period(self, at: dt.datetime) -> dt.timedelta | None:
        """The gap between the runs that follow `at` (an hourly cron: one hour), None if none come."""
        if self.every_seconds is not None:
            return dt.timedelta(seconds=self.every_seconds)
        first = self.next_run(at)
        second = self.next_run(first) if first is not None else None
        return second - first if first is not None and second is not None else None

    def _day_matches(self, day: dt.date, days: frozenset[int], weekdays: frozenset[int]) -> bool:
        weekday = (day.weekday() + 1) % 7  # cron: 0 = Sunday
        by_day, by_weekday = day.day in days, weekday in weekdays or (weekday == 0 and 7 in weekdays)
        if all(self.restricted):
            return by_day or by_weekday
        return by_day and by_weekday


def parse_schedule(text: object, time_zone: object = "Etc/UTC", field: str = "schedule") -> Schedule:
    """A cron expression or `@every Ns` -> Schedule; anything else is a ValidationError naming `field`."""
    if not isinstance(text, str):
        raise ValidationError("must be a cron expression or '@every Ns'", field=field, value=text)
    if not isinstance(time_zone, str):
        raise ValidationError("must be an IANA time zone name", field="time_zone", value=time_zone)
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError("unknown time zone", field="time_zone", value=time_zone) from exc
    every = _EVERY.fullmatch(text.strip())
    if every:
        seconds = int(every.group(1))
        if seconds < 1:
            raise ValidationError("an interval of at least 1 s", field=field, value=text)
        return Schedule(text.strip(), time_zone, every_seconds=seconds)
    parts = text.split()
    if len(parts) != 5:
        raise ValidationError("a cron expression has five fields", field=field, value=text)
    fields = tuple(_field(part, low, high, field, text) for part, (low, high) in zip(parts, _RANGES, strict=True))
    return Schedule(" ".join(parts), time_zone, None, fields, (parts[2] != "*", parts[4] != "*"))


def _field(part: str, low: int, high: int, field: str, text: str) -> frozenset[int]:
    values: set[int] = set()
    for item in part.split(","):
        match = re.fullmatch(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?", item)
        if not match:
            raise ValidationError(f"unreadable cron field {part!r}", field=field, value=text)
        span, step = match.group(1), int(match.group(2) or 1)
        first, last = (low, high) if span == "*" else (int(span.split("-")[0]), int(span.split("-")[-1]))
        if not low <= first <= last <= high or step < 1:
            raise ValidationError(f"cron field {part!r} outside {low}-{high}", field=field, value=text)
        values.update(range(first, last + 1, step))
    return frozenset(values)
