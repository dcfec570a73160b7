"""The lake's object layout, in one place: every writer and reader builds names here.

raw/{service}/{source file name}                         exact copy of the month file
staging/{service}/month=YYYY-MM/_manifest.json           the month split: its source, counts, split id
staging/{service}/month=YYYY-MM/split=ID/pickup_date=D/{trips,rejects}.parquet  each date, cleaned once
staging/{service}/month=YYYY-MM/split=ID/month_rejects.parquet  rows of the file from other months
staging/{service}/month=YYYY-MM/_failed.json             the month's permanent failure, recorded once
trips/{service}/pickup_date=YYYY-MM-DD/data.parquet      the daily partition (loaders' trigger)
rejects/{service}/pickup_date=YYYY-MM-DD/data.parquet    rows of that date failing a rule
rejects/{service}/source_month=YYYY-MM/data.parquet      rows of a month file not of that month
quarantine/{service}/pickup_date=YYYY-MM-DD/data.parquet output that failed data-quality checks
runs/{service}/pickup_date=YYYY-MM-DD/{function}/{event id}.json   the run ledger (shared/core/ledger.py)
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from urllib.parse import urlparse

from shared.core.schemas import SERVICES

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


def repaired_text_object(service: str, year: int, month: int) -> str:
    """The month's values that were not UTF-8 and how each was decoded (shared/ingest/text_repair.py)."""
    return f"rejects/{service}/source_month={year:04d}-{month:02d}/repaired_text.csv"


def staging_manifest(service: str, year: int, month: int) -> str:
    return f"staging/{service}/month={year:04d}-{month:02d}/_manifest.json"


def staging_claim(service: str, year: int, month: int) -> str:
    """Held while one instance splits the month (see shared/ingest/day.py)."""
    return f"staging/{service}/month={year:04d}-{month:02d}/_claim"


def staging_failure(service: str, year: int, month: int) -> str:
    """The month's permanent failure, recorded once (shared/ingest/month_failure.py)."""
    return f"staging/{service}/month={year:04d}-{month:02d}/_failed.json"


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


_RUN_RE = re.compile(
    r"^runs/(?P<service>[a-z]+)/pickup_date=(?P<date>\d{4}-\d{2}-\d{2})/(?P<function>[a-z_]+)/(?P<event>[^/]+)\.json$"
)
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9._-]")


def run_record(service: str, day: dt.date, function: str, event_id: str | None) -> str:
    """One object per (function, event): every delivery of an event overwrites its own record.

    Event ids come from outside (Pub/Sub message ids, Eventarc ids), so anything that is not
    a safe name character is replaced and the length bounded: the id can never add a level.
    """
    safe = _UNSAFE_ID.sub("_", event_id or "")[:100] or "no-id"
    return f"runs/{service}/pickup_date={day.isoformat()}/{function}/{safe}.json"


def runs_range(service: str, start: dt.date, end: dt.date) -> tuple[str, str, str]:
    """(prefix, start_offset, end_offset) listing exactly the run records of start..end inclusive.

    end_offset is exclusive, so it is the first name of the day after `end`.
    """
    base = f"runs/{service}/pickup_date="
    return base, f"{base}{start.isoformat()}/", f"{base}{(end + dt.timedelta(days=1)).isoformat()}/"


@dataclass(frozen=True)
class RunName:
    service: str
    date: dt.date
    function: str
    event_id: str


def _dated(pattern: re.Pattern[str], name: str) -> tuple[re.Match[str], dt.date] | None:
    """The match of a name with a known `service` and a real `date`, and that date."""
    match = pattern.match(name)
    if not match or match["service"] not in SERVICES:
        return None
    try:
        return match, dt.date.fromisoformat(match["date"])
    except ValueError:
        return None


def parse_run_record(name: str) -> RunName | None:
    """`runs/yellow/pickup_date=2021-01-15/ingest/123.json` -> RunName; anything else -> None."""
    found = _dated(_RUN_RE, name)
    if found is None:
        return None
    match, day = found
    return RunName(match["service"], day, match["function"], match["event"])


def prefix(kind: str, service: str) -> str:
    return f"{kind}/{service}/"


@dataclass(frozen=True)
class Partition:
    kind: str
    service: str
    date: dt.date


def parse_partition(name: str) -> Partition | None:
    """`trips/yellow/pickup_date=2021-01-15/data.parquet` -> Partition; anything else -> None."""
    found = _dated(_PARTITION_RE, name)
    if found is None:
        return None
    match, day = found
    return Partition(match["kind"], match["service"], day)
