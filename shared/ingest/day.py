"""Ingest one (service, date): the month (once) -> that date's checked partition in trips/.

The month behind the date, its raw copy and its split into daily files, is made once per
month by shared/ingest/staging.py (one instance makes it, the dates arriving meanwhile wait for it).
Publishing a date then costs a download of its staged file, a decode for the checks, and an
upload of the same bytes. Idempotent: `trips/` records what it derives from (raw generation,
code version, rules); a rerun with all unchanged rewrites nothing unless `force` (so the
loaders are not woken for nothing), except that a partition a loader never loaded is
re-announced, so a plain republish repairs a lost finalize event (shared/ingest/reannounce.py).
Rejects are written before trips, because trips' finalize event is what the loaders act on.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from google.api_core.exceptions import NotFound

from shared.core import logs, paths
from shared.core.errors import QualityCheckError, SourceError
from shared.core.messages import IngestRequest, today_in_new_york
from shared.core.settings import Settings
from shared.ingest import lake_cleanup, publication, reannounce, staging
from shared.ingest.cleaning import CHECKED_COLUMNS, Rules, check_partition
from shared.ingest.lake_write import upload_bytes


def ingest(bucket: Any, request: IngestRequest, settings: Settings) -> dict[str, Any]:
    """Run the whole ingest for one (service, date); returns the outcome fields to log."""
    timings: dict[str, float] = {}
    rules = Rules(
        keep_empty_passenger_count=settings.keep_empty_passenger_count, schema_contract=settings.schema_contract
    )
    trips_name = paths.trips_object(request.service, request.date)
    source = staging.source_of(bucket, request, settings)
    outcome: dict[str, Any] = {
        "service": request.service,
        "date": request.date,
        "object": trips_name,
        "source_url": source.url,
    }
    if source.raw is not None and not request.force:
        current = bucket.get_blob(trips_name)
        if current is not None and all(
            (current.metadata or {}).get(k) == v for k, v in staging.derived_from(source, rules).items()
        ):
            return {
                **outcome,
                "raw_generation": source.raw.generation,
                "rows_written": int(current.metadata.get("rows_written", 0)),
                **reannounce.repair_if_lost(bucket, request.service, request.date, current),
            }
    try:
        month = staging.ensure_month(bucket, request, settings, rules, timings, known=source)
    except SourceError as exc:
        if exc.reason != "source_not_found":
            raise
        return _not_found(request, settings, outcome, exc)
    try:
        trips_bytes = month.staged(bucket, request.date, "trips").download_as_bytes()
    except NotFound:  # a newer split superseded this one (its manifest is used), or the cache lost a file (split again)
        month = staging.ensure_month(bucket, request, settings, rules, timings, stale_split=month.manifest["split_id"])
        trips_bytes = month.staged(bucket, request.date, "trips").download_as_bytes()
    source, manifest = month.source, month.manifest
    outcome["raw_generation"] = source.raw.generation
    derived_from = staging.derived_from(source, rules)
    counts = manifest["days"][request.date.isoformat()]
    meta = {
        "service": request.service,
        "pickup_date": request.date.isoformat(),
        "source_url": source.url,
        **derived_from,
        **counts,
    }
    try:
        with logs.timed(timings, "check_seconds"):
            parquet = pq.ParquetFile(pa.BufferReader(trips_bytes))
            schema = parquet.schema_arrow
            trips = parquet.read(columns=[c for c in CHECKED_COLUMNS if c in schema.names])
            check_partition(trips, request.service, request.date, rules, counts["rows_read"], schema=schema)
        if trips.num_rows != counts["rows_written"]:
            raise QualityCheckError(
                "staged partition does not hold the rows the split counted",
                field="rows",
                value=trips.num_rows,
                expected=counts["rows_written"],
            )
    except QualityCheckError as exc:
        quarantine = paths.quarantine_object(request.service, request.date)
        upload_bytes(bucket, quarantine, trips_bytes, {**meta, "failed_check": exc.message})
        exc.details["context"] = {**outcome, "quarantine_object": quarantine, **counts}
        raise
    with logs.timed(timings, "write_seconds"):
        rejects_name = paths.rejects_object(request.service, request.date)
        if counts["rows_rejected"]:
            upload_bytes(bucket, rejects_name, month.staged(bucket, request.date, "rejects").download_as_bytes(), meta)
        else:
            lake_cleanup.delete_if_exists(bucket, rejects_name)
        written = upload_bytes(bucket, trips_name, trips_bytes, meta)
    reannounce.record_generation(written.generation)
    message = "partition written" if trips.num_rows else "partition written: the source has no rows for this date"
    return {
        **outcome,
        **counts,
        **timings,
        "message": message,
        "generation": written.generation,
        "severity": "INFO" if trips.num_rows else "WARNING",
        "rejected_by_reason": json.dumps(counts["rejected_by_reason"]),
    }


def _not_found(request: IngestRequest, settings: Settings, outcome: dict[str, Any], exc: SourceError) -> dict[str, Any]:
    """A 404: within SOURCE_GRACE_DAYS of the month's end the month is not published yet, which is
    the normal state of recent dates (shared/ingest/publication.py): acknowledged and recorded as
    `awaiting_source`, logged at INFO. Later, the same 404 is an error (the SourceError, dead-lettered)."""
    year, month = request.date.year, request.date.month
    due = publication.due_by(year, month, settings.source_grace_days)
    if not publication.awaiting(year, month, today_in_new_york(), settings.source_grace_days):
        exc.message = (
            f"{exc.value} does not exist (404), and its month ended {publication.month_end(year, month).isoformat()}, "
            f"SOURCE_GRACE_DAYS ({settings.source_grace_days}) or more days ago: the source should have it"
        )
        exc.args = (exc.message,)
        exc.details["due_by"] = due.isoformat()
        raise exc
    return {
        **outcome,
        "message": "the source has not published this month yet: awaiting it (not an error)",
        "awaiting_source": True,
        "reason": publication.AWAITING_REASON,
        "source_month": f"{year:04d}-{month:02d}",
        "due_by": due.isoformat(),
    }
