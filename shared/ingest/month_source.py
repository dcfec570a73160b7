"""What a date of a month is published from: the month's source (URL, format, raw copy) and,
once split, its manifest; and what a split is derived from (rebuilt when any of it changes).

Why its own module: the day (shared/ingest/day.py) and the month's preparation
(shared/ingest/staging.py) both read these, and staging.py holds the claim-and-split protocol.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from shared.core import paths
from shared.core.messages import IngestRequest
from shared.core.settings import Settings
from shared.ingest.cleaning import Rules
from shared.ingest.code_version import code_version
from shared.ingest.source import source_format, source_url


@dataclass(frozen=True)
class Source:
    url: str
    fmt: str
    raw: Any  # the raw blob, with its generation


@dataclass(frozen=True)
class Month:
    """What a date is published from: the raw copy and the manifest of its split."""

    source: Source
    manifest: dict[str, Any]

    def staged(self, bucket: Any, day: dt.date, kind: str) -> Any:
        return bucket.blob(paths.staging_day(self.manifest["service"], day, kind, self.manifest["split_id"]))


def source_of(bucket: Any, request: IngestRequest, settings: Settings) -> Source:
    """The month's source URL and its raw copy as it is now (`raw` None when not downloaded yet)."""
    url = source_url(settings.source_url_template, request.service, request.date.year, request.date.month)
    return Source(url, source_format(url), bucket.get_blob(paths.raw_object(request.service, url)))


def derived_from(source: Source, rules: Rules) -> dict[str, str]:
    """What an output is derived from: if any of it changes, the output is rebuilt."""
    return {
        "raw_generation": str(source.raw.generation),
        "code_version": code_version(),
        "keep_empty_passenger_count": str(rules.keep_empty_passenger_count),
        "schema_contract_mode": rules.schema_contract,
    }
