"""Ingest one (service, date): raw copy -> cleaned month (once) -> checked daily partition.

Every step is idempotent and keyed on what it derives from:
- `raw/` is downloaded only when absent; the create is conditional
  (if_generation_match=0), so two instances racing on one month keep one copy.
- `staging/` holds the month split into finished daily files, with a manifest
  (written last) naming the raw generation and code version it was built from;
  it is rebuilt only when either changed. Publishing a date then costs one
  download, a decode for the checks, and an upload of the same bytes.
- `trips/` records the same; a rerun with both unchanged rewrites nothing unless
  `force` (so the loaders are not woken for nothing). Rejects are written before
  trips, because trips' finalize event is what the loaders act on.
"""

from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from google.api_core.exceptions import NotFound, PreconditionFailed

from shared import logs, paths
from shared.cleaning import Rules, check_partition, code_version, reason_counts
from shared.errors import QualityCheckError, SourceError, TransientError
from shared.lake import split_month, upload_bytes, upload_parquet
from shared.messages import IngestRequest
from shared.settings import Settings
from shared.source import download_to_blob, source_format, source_url

UPLOAD_CHUNK = 8 << 20  # resumable upload chunk: bounds memory while streaming the download
READ_CHUNK = 8 << 20
SPLIT_CLAIM_SECONDS = 900  # longer than any split; a claim this old belongs to a crashed instance


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


def _derived_from(source: Source, rules: Rules) -> dict[str, str]:
    """What an output is derived from: if any of it changes, the output is rebuilt."""
    return {"raw_generation": str(source.raw.generation), "code_version": code_version(),
            "keep_empty_passenger_count": str(rules.keep_empty_passenger_count)}


def ensure_staging(bucket: Any, request: IngestRequest, source: Source, rules: Rules,
                   timings: dict[str, float], rebuild: bool = False) -> dict[str, Any]:
    """The month split into daily files under staging/, rebuilt only if the raw copy or the code
    changed (or `rebuild`: a staged file went missing, e.g. to the lifecycle rule). Returns the
    manifest, which is written last: its presence means the split is whole."""
    year, month = request.date.year, request.date.month
    manifest_name = paths.staging_manifest(request.service, year, month)
    wanted = _derived_from(source, rules)
    current = None if rebuild else _current_manifest(bucket, manifest_name, wanted)
    if current is not None:
        return current
    with _split_claim(bucket, paths.staging_claim(request.service, year, month)):
        current = None if rebuild else _current_manifest(bucket, manifest_name, wanted)
        return current or _split_and_stage(bucket, request, source, rules, timings, manifest_name, wanted)


def _current_manifest(bucket: Any, name: str, wanted: dict[str, str]) -> dict[str, Any] | None:
    blob = bucket.get_blob(name)
    if blob is None:
        return None
    manifest = json.loads(blob.download_as_bytes())
    return manifest if all(manifest.get(k) == v for k, v in wanted.items()) else None


@contextmanager
def _split_claim(bucket: Any, name: str) -> Iterator[None]:
    """One instance splits a month at a time; the others retry shortly and then find the manifest.

    The claim is an object created with a create-only precondition; one older than
    SPLIT_CLAIM_SECONDS is a crashed holder's and is taken over.
    """
    claim = bucket.blob(name)
    try:
        claim.upload_from_string(b"", if_generation_match=0)
    except PreconditionFailed:
        held = bucket.get_blob(name)
        age = (dt.datetime.now(dt.timezone.utc) - held.time_created).total_seconds() if held else None
        if held is not None and age is not None and age < SPLIT_CLAIM_SECONDS:
            raise TransientError("another instance is splitting this month; retrying shortly",
                                 reason="month_split_in_progress", object=name) from None
        try:
            claim.upload_from_string(b"", if_generation_match=held.generation if held else 0)
        except PreconditionFailed:
            raise TransientError("another instance took over the month split", reason="month_split_in_progress",
                                 object=name) from None
    try:
        yield
    finally:
        _delete_if_exists(bucket, name, generation=claim.generation)


def _split_and_stage(bucket: Any, request: IngestRequest, source: Source, rules: Rules,
                     timings: dict[str, float], manifest_name: str, wanted: dict[str, str]) -> dict[str, Any]:
    year, month = request.date.year, request.date.month
    with logs.timed(timings, "split_month_seconds"):
        try:
            with source.raw.open("rb", chunk_size=READ_CHUNK) as raw_file:
                split = split_month(raw_file, source.fmt, request.service, year, month, rules)
        except SourceError:
            _quarantine_raw(bucket, source)
            raise
    month_rejects = split.month_rejects_table
    rejects_name = paths.month_rejects_object(request.service, year, month)
    malformed_name = paths.malformed_rows_object(request.service, year, month)
    meta = {**wanted, "source_url": source.url, "source_rows": split.source_rows,
            "month_rejected_rows": split.month_rejected_rows, "malformed_rows": len(split.malformed)}
    with logs.timed(timings, "stage_seconds"):
        if month_rejects is not None:
            upload_parquet(bucket, rejects_name, month_rejects, {
                **meta, "rows_rejected": month_rejects.num_rows,
                "rejected_by_reason": reason_counts(month_rejects["reject_reason"])})
        else:
            _delete_if_exists(bucket, rejects_name)
        if split.malformed:
            upload_bytes(bucket, malformed_name, ("\n".join(split.malformed) + "\n").encode(), meta,
                         content_type="text/csv")
        else:
            _delete_if_exists(bucket, malformed_name)
        uploads = [(paths.staging_day(request.service, day, "trips"), part.trips)
                   for day, part in split.days.items()]
        uploads += [(paths.staging_day(request.service, day, "rejects"), part.rejects)
                    for day, part in split.days.items() if part.rejects is not None]
        with ThreadPoolExecutor(max_workers=8) as pool:  # I/O bound: a month is ~60 small objects
            list(pool.map(lambda item: upload_bytes(bucket, *item), uploads))
        manifest = {**meta, "bad_values": split.bad_values,
                    "days": {day.isoformat(): part.counts() for day, part in split.days.items()}}
        bucket.blob(manifest_name).upload_from_string(json.dumps(manifest), content_type="application/json")
    # Unreadable values and malformed lines are worth a person's look: say where they are.
    log, message = ((logs.warning, "month split; rows with unreadable values or the wrong number of fields "
                     "set aside (rejects/: bad_value, malformed_rows.csv)")
                    if split.bad_values or split.malformed else (logs.info, "month split"))
    log(message, service=request.service, month=f"{year:04d}-{month:02d}", object=manifest_name,
        rows_read=split.source_rows, rows_rejected=split.month_rejected_rows, days=len(split.days),
        bad_values=split.bad_values or None, malformed_rows=len(split.malformed) or None,
        malformed_object=malformed_name if split.malformed else None)
    return manifest


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
    derived_from = _derived_from(source, rules)
    if (current is not None and not request.force
            and all((current.metadata or {}).get(k) == v for k, v in derived_from.items())):
        return {**outcome, "message": "partition already up to date; nothing rewritten", "skipped": True,
                "rows_written": int(current.metadata.get("rows_written", 0))}
    manifest = ensure_staging(bucket, request, source, rules, timings)
    staged_trips = bucket.blob(paths.staging_day(request.service, request.date, "trips"))
    try:
        trips_bytes = staged_trips.download_as_bytes()
    except NotFound:  # the cache lost a file: split the month again rather than fail the date
        manifest = ensure_staging(bucket, request, source, rules, timings, rebuild=True)
        trips_bytes = staged_trips.download_as_bytes()
    counts = manifest["days"][request.date.isoformat()]
    with logs.timed(timings, "check_seconds"):
        trips = pq.read_table(pa.BufferReader(trips_bytes))
    meta = {"service": request.service, "pickup_date": request.date.isoformat(), "source_url": source.url,
            **derived_from, **counts}
    try:
        check_partition(trips, request.service, request.date, rules, counts["rows_read"])
        if trips.num_rows != counts["rows_written"]:
            raise QualityCheckError("staged partition does not hold the rows the split counted", field="rows",
                                    value=trips.num_rows, expected=counts["rows_written"])
    except QualityCheckError as exc:
        quarantine = paths.quarantine_object(request.service, request.date)
        upload_parquet(bucket, quarantine, trips, {**meta, "failed_check": exc.message})
        exc.details["context"] = {**outcome, "quarantine_object": quarantine, **counts}
        raise
    with logs.timed(timings, "write_seconds"):
        rejects_name = paths.rejects_object(request.service, request.date)
        if counts["rows_rejected"]:
            staged = bucket.blob(paths.staging_day(request.service, request.date, "rejects"))
            upload_bytes(bucket, rejects_name, staged.download_as_bytes(), meta)
        else:
            _delete_if_exists(bucket, rejects_name)
        written = upload_bytes(bucket, trips_name, trips_bytes, meta)
    message = "partition written" if trips.num_rows else "partition written: the source has no rows for this date"
    return {**outcome, **counts, **timings, "message": message, "generation": written.generation,
            "severity": "INFO" if trips.num_rows else "WARNING",
            "rejected_by_reason": json.dumps(counts["rejected_by_reason"])}

