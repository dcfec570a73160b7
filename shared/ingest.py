"""Ingest one (service, date): raw copy -> cleaned month (once) -> checked daily partition.

Every step is idempotent and keyed on what it derives from:
- `raw/` is downloaded only when absent; the create is conditional
  (if_generation_match=0), so two instances racing on one month keep one copy.
- `staging/` records the raw generation and code version it was built from and
  is rebuilt only when either changed.
- `trips/` records the same; a rerun with both unchanged rewrites nothing unless
  `force` (so the loaders are not woken for nothing). Rejects are written before
  trips, because trips' finalize event is what the loaders act on.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq
from google.api_core.exceptions import NotFound, PreconditionFailed

from shared import logs, paths
from shared.cleaning import Rules, check_partition, code_version, reason_counts
from shared.errors import QualityCheckError, SourceError
from shared.lake import extract_day, split_month, upload_parquet
from shared.messages import IngestRequest
from shared.settings import Settings
from shared.source import download_to_blob, source_format, source_url

UPLOAD_CHUNK = 8 << 20  # resumable upload chunk: bounds memory while streaming the download
READ_CHUNK = 8 << 20


@dataclass(frozen=True)
class Source:
    url: str
    fmt: str
    raw: Any  # the raw blob, with its generation


def ensure_raw(bucket: Any, request: IngestRequest, settings: Settings, timings: dict[str, float]) -> Source:
    day = request.date
    url = source_url(settings.source_url_template, request.service, day.year, day.month)
    fmt = source_format(url)
    name = paths.raw_object(request.service, url)
    blob = bucket.get_blob(name)
    if blob is None:
        new = bucket.blob(name, chunk_size=UPLOAD_CHUNK)
        new.metadata = {"source_url": url, "downloaded_at": dt.datetime.now(dt.timezone.utc).isoformat()}
        with logs.timed(timings, "download_seconds"):
            try:
                # Create-only: of two instances racing on one month, one copy is kept.
                download_to_blob(url, new, timeout=settings.download_timeout_seconds,
                                 attempts=settings.download_max_attempts, if_generation_match=0)
            except PreconditionFailed:
                logs.info("raw copy written concurrently by another instance; reusing it", object=name)
        blob = bucket.get_blob(name)
    return Source(url, fmt, blob)


def ensure_staging(bucket: Any, request: IngestRequest, source: Source, rules: Rules,
                   timings: dict[str, float]) -> Any:
    """The cleaned month, rebuilt only if the raw copy or the code changed."""
    year, month = request.date.year, request.date.month
    name = paths.staging_object(request.service, year, month)
    staging = bucket.get_blob(name)
    wanted = {"raw_generation": str(source.raw.generation), "code_version": code_version(),
              "keep_empty_passenger_count": str(rules.keep_empty_passenger_count)}
    if staging is not None and all((staging.metadata or {}).get(k) == v for k, v in wanted.items()):
        return staging
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with logs.timed(timings, "split_month_seconds"):
        try:
            with source.raw.open("rb", chunk_size=READ_CHUNK) as raw_file:
                split = split_month(raw_file, source.fmt, request.service, year, month, rules, sink)
        except SourceError:
            _quarantine_raw(bucket, source)
            raise
    month_rejects = split.month_rejects_table
    rejects_name = paths.month_rejects_object(request.service, year, month)
    meta = {**wanted, "source_url": source.url, "source_rows": split.source_rows,
            "month_rejected_rows": split.month_rejected_rows}
    if month_rejects is not None:
        upload_parquet(bucket, rejects_name, month_rejects, {
            **meta, "rows_rejected": month_rejects.num_rows,
            "rejected_by_reason": reason_counts(month_rejects["reject_reason"])})
    else:
        _delete_if_exists(bucket, rejects_name)
    blob = bucket.blob(name)
    blob.metadata = {k: str(v) for k, v in meta.items()}
    blob.upload_from_string(sink.getvalue().to_pybytes(), content_type="application/vnd.apache.parquet")
    logs.info("month split", service=request.service, month=f"{year:04d}-{month:02d}", object=name,
              rows_read=split.source_rows, rows_rejected=split.month_rejected_rows, days=len(split.day_rows))
    return bucket.get_blob(name)


def _quarantine_raw(bucket: Any, source: Source) -> None:
    """A corrupt raw copy is moved aside for inspection, so the next attempt downloads afresh."""
    target = "quarantine/" + source.raw.name
    bucket.copy_blob(source.raw, bucket, target)
    _delete_if_exists(bucket, source.raw.name, generation=source.raw.generation)


def _delete_if_exists(bucket: Any, name: str, generation: int | None = None) -> None:
    try:
        bucket.delete_blob(name, if_generation_match=generation)
    except (NotFound, PreconditionFailed):
        pass


def ingest(bucket: Any, request: IngestRequest, settings: Settings) -> dict[str, Any]:
    """Run the whole ingest for one (service, date); returns the outcome fields to log."""
    timings: dict[str, float] = {}
    rules = Rules(keep_empty_passenger_count=settings.keep_empty_passenger_count)
    source = ensure_raw(bucket, request, settings, timings)
    trips_name = paths.trips_object(request.service, request.date)
    outcome: dict[str, Any] = {"service": request.service, "date": request.date, "object": trips_name,
                               "source_url": source.url, "raw_generation": source.raw.generation}
    current = bucket.get_blob(trips_name)
    if (current is not None and not request.force
            and (current.metadata or {}).get("raw_generation") == str(source.raw.generation)
            and (current.metadata or {}).get("code_version") == code_version()):
        return {**outcome, "message": "partition already up to date; nothing rewritten", "skipped": True,
                "rows_written": int(current.metadata.get("rows_written", 0))}
    staging_blob = ensure_staging(bucket, request, source, rules, timings)
    with logs.timed(timings, "extract_seconds"), staging_blob.open("rb", chunk_size=READ_CHUNK) as handle:
        trips, rejects = extract_day(pq.ParquetFile(handle), request.date)
    by_reason = reason_counts(rejects["reject_reason"])
    counts = {"rows_read": trips.num_rows + rejects.num_rows, "rows_written": trips.num_rows,
              "rows_rejected": rejects.num_rows, "rejected_by_reason": by_reason}
    meta = {"service": request.service, "pickup_date": request.date.isoformat(), "source_url": source.url,
            "raw_generation": str(source.raw.generation), "code_version": code_version(), **counts}
    try:
        check_partition(trips, request.service, request.date, rules, counts["rows_read"])
    except QualityCheckError as exc:
        quarantine = paths.quarantine_object(request.service, request.date)
        upload_parquet(bucket, quarantine, trips, {**meta, "failed_check": exc.message})
        exc.details["context"] = {**outcome, "quarantine_object": quarantine, **counts}
        raise
    with logs.timed(timings, "write_seconds"):
        rejects_name = paths.rejects_object(request.service, request.date)
        if rejects.num_rows:
            upload_parquet(bucket, rejects_name, rejects, meta)
        else:
            _delete_if_exists(bucket, rejects_name)
        written = upload_parquet(bucket, trips_name, trips, meta)
    message = "partition written" if trips.num_rows else "partition written: the source has no rows for this date"
    return {**outcome, **counts, **timings, "message": message, "generation": written.generation,
            "severity": "INFO" if trips.num_rows else "WARNING",
            "rejected_by_reason": json.dumps(by_reason)}
