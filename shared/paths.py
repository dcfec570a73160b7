"""The lake's object layout, in one place: every writer and reader builds names here.

    raw/{service}/{source file name}                         exact copy of the month file
    staging/{service}/month=YYYY-MM/_manifest.json           the month split: its source, counts, split id
    staging/{service}/month=YYYY-MM/split=ID/pickup_date=D/{trips,rejects}.parquet  each date, cleaned once
    staging/{service}/month=YYYY-MM/split=ID/month_rejects.parquet  rows of the file from other months
    trips/{service}/pickup_date=YYYY-MM-DD/data.parquet      the daily partition (loaders' trigger)
    rejects/{service}/pickup_date=YYYY-MM-DD/data.parquet    rows of that date failing a rule
    rejects/{service}/source_month=YYYY-MM/data.parquet      rows of a month file not of that month
    quarantine/{service}/pickup_date=YYYY-MM-DD/data.parquet output that failed data-quality checks
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from urllib.parse import urlparse

from shared.schemas import SERVICES

_PARTITION_RE = re.compile(
    r"^(?P<kind>trips|rejects|quarantine)/(?P<service>[a-z]+)/pickup_date=(?P<date>\d{4}-\d{2}-\d{2})/data\.parquet$"
)


def trips_object(service: str, day: dt.date) -> str:
    return f"trips/{service}/pickup_date={day.isoformat()}/data.parquet"


def rejects_object(service: str, day: dt.date) -> str:
    return f"rejects/{service}/pickup_date={day.isoformat()}/data.parquet"


def quarantine_object(service: str, day: dt.date) -> str:
    return f"quarantine/{service}/pickup_date={day.isoformat()}/data.parquet"


def month_rejects_object(service: str, year: int, month: int) -> str:
    return f"rejects/{service}/source_month={year:04d}-{month:02d}/data.parquet"


def malformed_rows_object(service: str, year: int, month: int) -> str:
    """The source lines with the wrong number of fields, verbatim (they fit no typed table)."""
    return f"rejects/{service}/source_month={year:04d}-{month:02d}/malformed_rows.csv"


def staging_manifest(service: str, year: int, month: int) -> str:
    return f"staging/{service}/month={year:04d}-{month:02d}/_manifest.json"


def staging_claim(service: str, year: int, month: int) -> str:
    """Held while one instance splits the month (see shared/ingest.py)."""
    return f"staging/{service}/month={year:04d}-{month:02d}/_claim"


def staging_split(service: str, year: int, month: int, split_id: str) -> str:
    """The prefix of one split's files. Each split writes under its own id and never overwrites
    another's, so a manifest (written last, naming its split) always names whole files."""
    return f"staging/{service}/month={year:04d}-{month:02d}/split={split_id}/"


def staging_day(service: str, day: dt.date, kind: str, split_id: str) -> str:
    return f"{staging_split(service, day.year, day.month, split_id)}pickup_date={day.isoformat()}/{kind}.parquet"


def staging_month_rejects(service: str, year: int, month: int, split_id: str) -> str:
    return f"{staging_split(service, year, month, split_id)}month_rejects.parquet"


def raw_object(service: str, source_url: str) -> str:
    """Raw copy named after the source file, so a format change never collides."""
    name = urlparse(source_url).path.rsplit("/", 1)[-1] or "source"
    return f"raw/{service}/{name}"


def prefix(kind: str, service: str) -> str:
    return f"{kind}/{service}/"


@dataclass(frozen=True)
class Partition:
    kind: str
    service: str
    date: dt.date


def parse_partition(name: str) -> Partition | None:
    """`trips/yellow/pickup_date=2021-01-15/data.parquet` -> Partition; anything else -> None."""
    match = _PARTITION_RE.match(name)
    if not match or match["service"] not in SERVICES:
        return None
    try:
        day = dt.date.fromisoformat(match["date"])
    except ValueError:
        return None
    return Partition(match["kind"], match["service"], day)
