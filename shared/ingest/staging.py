"""The month behind a date: its raw copy and its split into daily files, made once per month.

Every date of a month needs the same work first: download the month file (kept verbatim
under raw/) and split it into cleaned daily files under staging/. One instance does it while
holding the month's claim (shared/ingest/month_claim.py); the dates that arrive meanwhile wait for
its manifest and then publish themselves from it, so a whole-month backfill downloads and
parses the month once and every delivery succeeds the first time.

- The raw copy is downloaded under the claim, so of 31 dates arriving together one downloads;
  the create is conditional (if_generation_match=0) all the same.
- The split streams each date's files to staging/ as the month file is read (memory does not
  grow with the month) under `split=ID/`, a prefix no other split writes; the manifest,
  written last, names the split, the raw generation and the code version, and is trusted only
  while all three match: it is rebuilt when the raw copy or the code changed, or its files went
  missing (the lifecycle rule).
"""

from __future__ import annotations

import json
import time
from typing import Any

from shared.core import logs, paths
from shared.core.errors import SourceError, TransientError
from shared.core.messages import IngestRequest
from shared.core.settings import Settings
from shared.ingest import month_claim, month_failure
from shared.ingest.cleaning import Rules
from shared.ingest.lake import split_month
from shared.ingest.lake_cleanup import delete_if_exists, delete_other_splits, quarantine_raw
from shared.ingest.lake_write import upload_bytes
from shared.ingest.month_file import CORRUPT_SOURCE
from shared.ingest.month_source import Month, Source, derived_from, source_of
from shared.ingest.source import download_raw, source_url
from shared.ingest.split_output import BucketOutput, Key

READ_CHUNK = 2 << 20


def ensure_month(
    bucket: Any,
    request: IngestRequest,
    settings: Settings,
    rules: Rules,
    timings: dict[str, float],
    stale_split: str | None = None,
    known: Source | None = None,
) -> Month:
    """The month's raw copy and split, made by this instance or waited for (bounded by
    SPLIT_WAIT_SECONDS) while another makes them. `stale_split` names a split that lost files;
    `known`: the raw copy as the caller just read it, used for the first look (one request less
    for each of a month's dates)."""
    year, month = request.date.year, request.date.month
    manifest_name = paths.staging_manifest(request.service, year, month)
    claim_name = paths.staging_claim(request.service, year, month)
    first_look = [known] if known is not None and known.raw is not None else []

    def current() -> Month | None:  # the month ready, or None; its recorded failure is raised
        source = first_look.pop() if first_look else source_of(bucket, request, settings)
        if source.raw is not None:
            manifest = _current_manifest(bucket, manifest_name, derived_from(source, rules), stale_split)
            if manifest is not None:
                return Month(source, manifest)
        month_failure.raise_if_recorded(
            bucket, request.service, request.date, source.url, settings.download_timeout_seconds
        )
        return None

    started = time.monotonic()
    deadline = started + settings.split_wait_seconds
    while True:
        found = current()
        if found is not None:
            break
        claim = month_claim.MonthClaim(bucket, claim_name)
        if claim.acquire():
            with claim:
                found = current() or _make_month(bucket, request, settings, rules, timings, claim.split_id)
            break
        logs.info(
            "another instance is preparing this month; waiting for its manifest",
            service=request.service,
            date=request.date,
            object=claim_name,
        )
        found = month_claim.wait_for(current, lambda: month_claim.is_free(bucket, claim_name), deadline)
        if found is not None:
            break
        if time.monotonic() >= deadline:
            raise TransientError(
                f"another instance is still preparing this month after {settings.split_wait_seconds} s; retrying later",
                reason="month_split_in_progress",
                object=claim_name,
            )
    waited = (
        time.monotonic()
        - started
        - sum(timings.get(k, 0) for k in ("download_seconds", "split_month_seconds", "stage_seconds"))
    )
    if waited > 0.5:
        timings["wait_for_split_seconds"] = round(waited, 3)
    return found


# Manifests this instance has read or written, by object name: (generation, manifest). A name and
# generation name one content for good, so a warm instance publishing a month's dates reads the
# manifest's metadata for each date but downloads it once (or never, if it wrote it).
_manifests: dict[str, tuple[int, dict[str, Any]]] = {}


def _current_manifest(bucket: Any, name: str, wanted: dict[str, str], stale_split: str | None) -> dict[str, Any] | None:
    blob = bucket.get_blob(name)
    if blob is None:
        return None
    cached = _manifests.get(name)
    if cached is not None and cached[0] == blob.generation:
        manifest = cached[1]
    else:
        manifest = json.loads(blob.download_as_bytes())
        _manifests[name] = (blob.generation, manifest)
    if not manifest.get("split_id") or manifest["split_id"] == stale_split:
        return None
    return manifest if all(manifest.get(k) == v for k, v in wanted.items()) else None


def _make_month(
    bucket: Any, request: IngestRequest, settings: Settings, rules: Rules, timings: dict[str, float], split_id: str
) -> Month:
    """Under the claim: download the raw copy if absent, split it, write the manifest.

    A raw copy whose gzip or parquet turns out corrupt is quarantined by the split, and the
    month is downloaded and split once more in the same call: a file cut short by a proxy (the
    HTTP transfer complete, the gzip stream not) is usually whole the next time, and found by
    `python -m chaos` dead-lettering a date. Corrupt twice, the SourceError is raised (permanent).
    A permanent failure is recorded next to the month (shared/ingest/month_failure.py)."""
    url = source_url(settings.source_url_template, request.service, request.date.year, request.date.month)
    with month_failure.recorded(bucket, request.service, request.date, url, settings.download_timeout_seconds):
        return _prepare(bucket, request, settings, rules, timings, split_id)


def _prepare(
    bucket: Any, request: IngestRequest, settings: Settings, rules: Rules, timings: dict[str, float], split_id: str
) -> Month:
    for attempt in (1, 2):
        source = source_of(bucket, request, settings)
        if source.raw is None:
            name, timeout = paths.raw_object(request.service, source.url), settings.download_timeout_seconds
            with logs.timed(timings, "download_seconds"):
                raw = download_raw(bucket, name, source.url, timeout, settings.download_max_attempts)
            source = Source(source.url, source.fmt, raw)
        try:
            return Month(source, _split_and_stage(bucket, request, source, rules, timings, split_id))
        except SourceError as exc:
            if attempt == 2 or exc.reason != CORRUPT_SOURCE:
                raise
            logs.warning(
                "the month file is corrupt; quarantined, downloading it once more",
                service=request.service,
                date=request.date,
                object=source.raw.name,
                url=source.url,
                error=exc.message[:300],
            )
    raise AssertionError("unreachable")


def _split_and_stage(
    bucket: Any, request: IngestRequest, source: Source, rules: Rules, timings: dict[str, float], split_id: str
) -> dict[str, Any]:
    """Split the month straight into this split's own staging files, copy the month's rejects
    into place, and write the manifest naming the split, last."""
    service, year, month = request.service, request.date.year, request.date.month

    def staged_name(key: Key) -> str:
        day, kind = key
        return (
            paths.staging_day(service, day, kind, split_id)
            if day is not None
            else paths.staging_month_rejects(service, year, month, split_id)
        )

    with logs.timed(timings, "split_month_seconds"):
        try:
            with source.raw.open("rb", chunk_size=READ_CHUNK) as raw_file:
                split = split_month(
                    raw_file, source.fmt, service, year, month, rules, BucketOutput(bucket, staged_name)
                )
        except SourceError:
            quarantine_raw(bucket, source.raw)
            raise
    rejects_name = paths.month_rejects_object(service, year, month)
    malformed_name = paths.malformed_rows_object(service, year, month)
    meta = {
        **derived_from(source, rules),
        "source_url": source.url,
        "source_rows": split.source_rows,
        "month_rejected_rows": split.month_rejected_rows,
        "malformed_rows": len(split.malformed),
        "repaired_text_rows": split.repairs.rows,
    }
    with logs.timed(timings, "stage_seconds"):
        if split.month_rejected_rows:
            copy = bucket.copy_blob(bucket.blob(staged_name((None, "rejects"))), bucket, rejects_name)
            copy.metadata = {
                k: (v if isinstance(v, str) else json.dumps(v))
                for k, v in {
                    **meta,
                    "rows_rejected": split.month_rejected_rows,
                    "rejected_by_reason": split.month_rejected_by_reason,
                }.items()
            }
            copy.patch()
        else:
            delete_if_exists(bucket, rejects_name)
        if split.malformed:
            upload_bytes(
                bucket, malformed_name, ("\n".join(split.malformed) + "\n").encode(), meta, content_type="text/csv"
            )
        else:
            delete_if_exists(bucket, malformed_name)
        repaired_name = paths.repaired_text_object(service, year, month)
        if split.repairs.rows:
            upload_bytes(bucket, repaired_name, split.repairs.csv_bytes(), meta, content_type="text/csv")
        else:
            delete_if_exists(bucket, repaired_name)
        manifest = {
            **meta,
            "service": service,
            "split_id": split_id,
            "bad_values": split.bad_values,
            "schema_contract": split.contract,
            "text_repairs": split.repairs.manifest(),
            "days": {day.isoformat(): part.counts() for day, part in split.days.items()},
        }
        written = bucket.blob(paths.staging_manifest(service, year, month))
        written.upload_from_string(json.dumps(manifest), content_type="application/json")
        if written.generation is not None:
            _manifests[written.name] = (written.generation, json.loads(json.dumps(manifest)))
        superseded = delete_other_splits(bucket, service, year, month, split_id)
    # Unreadable values and malformed lines are worth a person's look: say where they are.
    log, message = (
        (
            logs.warning,
            "month split; rows with unreadable values or the wrong number of fields "
            "set aside (rejects/: bad_value, malformed_rows.csv)",
        )
        if split.bad_values or split.malformed
        else (logs.info, "month split")
        if not split.repairs.rows
        else (logs.warning, "month split; values that were not UTF-8 decoded as Windows-1252 (repaired_text.csv)")
    )
    log(
        message,
        service=service,
        month=f"{year:04d}-{month:02d}",
        split_id=split_id,
        object=paths.staging_manifest(service, year, month),
        rows_read=split.source_rows,
        rows_rejected=split.month_rejected_rows,
        days=len(split.days),
        bad_values=split.bad_values or None,
        malformed_rows=len(split.malformed) or None,
        malformed_object=malformed_name if split.malformed else None,
        repaired_text_rows=split.repairs.rows or None,
        schema_contract=split.contract
        if split.contract.get("new_columns") or split.contract.get("missing_columns")
        else None,
        superseded_files=superseded or None,
        **{k: v for k, v in timings.items() if k in ("download_seconds", "split_month_seconds")},
    )
    return manifest
