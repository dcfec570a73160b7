"""Can the configured source serve this (service, month)? Decided from the message, before any download.

Why at the message: a month the source will never have (the mirror stops at 2021-07; TLC publishes
only parquet since 2022) used to be downloaded or 404ed and dead-lettered date by date, 31 times a
month. The decision is pure (service, year, month, SOURCE_URL_TEMPLATE -> None or a refusal) and
reads the era table (shared/core/eras.py); a refusal is a ValidationError with reason
`unsupported_month` naming the field, the value and what would serve it.

Which source the template is: DataTalksClub's mirror (github.com/DataTalksClub/nyc-tlc-data/...),
TLC's own host (d37ci6vzurychx.cloudfront.net), or another host whose holdings are unknown (an
operator's own copy, the local stack's TLC server): nothing is refused for it, since only a
download can tell (a 404 there stays `source_not_found`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.core.eras import FIRST_MONTH, MIRROR, MIRROR_LAST, TLC, TLC_PARQUET_TEMPLATE, era
from shared.core.errors import ValidationError

UNSUPPORTED = "unsupported_month"
_HOSTS = {"d37ci6vzurychx.cloudfront.net": TLC}
_MIRROR_PATH = "/DataTalksClub/nyc-tlc-data/"


@dataclass(frozen=True)
class Refusal:
    message: str
    serves: str  # what would serve the month

    def error(self, field: str, value: str) -> ValidationError:
        return ValidationError(self.message, reason=UNSUPPORTED, field=field, value=value, serves=self.serves)


def source_kind(template: str) -> str | None:
    """MIRROR, TLC, or None for a host whose holdings this code does not know."""
    parts = urlsplit(template)
    host = (parts.hostname or "").lower()
    if host == "github.com" and parts.path.startswith(_MIRROR_PATH):
        return MIRROR
    return _HOSTS.get(host)


def _month(pair: tuple[int, int]) -> str:
    return f"{pair[0]}-{pair[1]:02d}"


def _fmt(template: str) -> str:
    path = urlsplit(template).path.lower()
    return "parquet" if path.endswith(".parquet") else "csv.gz" if path.endswith(".csv.gz") else "csv"


def refusal(service: str, year: int, month: int, template: str) -> Refusal | None:
    """None when the source serves the month (or cannot be known not to), else why not."""
    label = f"{service} {year}-{month:02d}"
    if (year, month) < FIRST_MONTH[service]:
        first = _month(FIRST_MONTH[service])
        return Refusal(f"TLC published no {service} data before {first}", f"a month from {first} on")
    kind = source_kind(template)
    if kind is None:
        return None
    fmt = _fmt(template)
    if kind == TLC and fmt != "parquet":
        return Refusal(
            f"TLC publishes {label} only as parquet (since its 2022 reissue), not {fmt}", TLC_PARQUET_TEMPLATE
        )
    if kind == MIRROR and fmt != "csv.gz":
        return Refusal(f"DataTalksClub's mirror holds only .csv.gz files, not {fmt}", TLC_PARQUET_TEMPLATE)
    if era(service, kind, year, month) is not None:
        return None
    held = f"{_month(max(FIRST_MONTH[service], (2019, 1)))}..{_month(MIRROR_LAST)}"
    return Refusal(
        f"the configured source (DataTalksClub's CSV mirror) holds {service} {held} only, not {label}; "
        f"set SOURCE_URL_TEMPLATE to TLC's parquet files to load it",
        TLC_PARQUET_TEMPLATE,
    )


def check_served(service: str, day: dt.date, template: str, field: str = "date") -> None:
    """Raise the `unsupported_month` ValidationError for a date whose month the source cannot serve."""
    found = refusal(service, day.year, day.month, template)
    if found is not None:
        raise found.error(field, day.isoformat())


def first_unserved(
    services: tuple[str, ...], start: dt.date, end: dt.date, template: str
) -> tuple[str, dt.date, Refusal] | None:
    """The first (service, month start, refusal) of a range the source cannot serve, month by month."""
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        for service in services:
            found = refusal(service, year, month, template)
            if found is not None:
                return service, max(start, dt.date(year, month, 1)), found
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return None
