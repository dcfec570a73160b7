"""A month that failed for good is recorded once; its other dates fail at once with the same reason.

Why: every date of a month needs the same month file. Before this module, a month whose file was
bad (wrong schema, unreadable values, corrupt twice, an error page every time) failed the date
that held the month's claim, and then each waiting date took the claim in turn, downloaded and
split the whole month again and failed the same way: 31 to 62 downloads of a file known to be
bad. Now the date that finds the failure writes it next to the month
(`staging/{service}/month=YYYY-MM/_failed.json`: the structured error, the source URL, the
source file's identity as its HTTP headers gave it (ETag, Last-Modified, size) and the code
version), and every other date of the month reads it and is dead-lettered at once with the same
reason, without downloading anything.

What clears it:
- a replay of the month's dead letters (shared/operate/replay.py deletes the record, named in the
  dead letter, before it republishes), after a person fixed the cause;
- the source changing: a date that finds the record asks the source for the file's identity (one
  HEAD, no body) and, when the ETag, Last-Modified or size differ (or the file is gone), deletes
  the record and prepares the month afresh;
- another code version (a fix deployed) or another source URL (SOURCE_URL_TEMPLATE changed): the
  record no longer applies and is ignored, then overwritten if the month fails again.
A 404 is never recorded: it downloads nothing, and it is either a month not published yet
(shared/ingest/publication.py) or one the source may still put back.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from google.api_core.exceptions import NotFound, PreconditionFailed

from shared.core import logs, paths
from shared.core.errors import PermanentError, SourceError, TransientError
from shared.ingest.code_version import code_version
from shared.ingest.source import IDENTITY_HEADERS, head_identity

NOT_RECORDED = frozenset({"source_not_found"})
IDENTITY_KEYS = frozenset(IDENTITY_HEADERS.values())


def record_name(service: str, day: dt.date) -> str:
    return paths.staging_failure(service, day.year, day.month)


def failed_identity(bucket: Any, service: str, url: str, timeout: int) -> dict[str, str] | None:
    """The identity of the file that failed: the raw copy's (the download recorded the headers),
    kept under raw/ or moved to quarantine/ by the split; else (the download itself failed) a HEAD."""
    name = paths.raw_object(service, url)
    for blob in (bucket.get_blob(name), bucket.get_blob("quarantine/" + name)):
        found = {k: v for k, v in ((blob.metadata if blob else None) or {}).items() if k in IDENTITY_KEYS}
        if found:
            return found
    try:
        return head_identity(url, timeout)
    except TransientError:
        return None


def remember(bucket: Any, service: str, day: dt.date, url: str, timeout: int, error: PermanentError) -> None:
    """Write the month's failure (overwriting an older one); never fails the date it describes."""
    if error.reason in NOT_RECORDED:
        return
    name = record_name(service, day)
    source_identity = failed_identity(bucket, service, url, timeout)
    body = {
        "service": service,
        "month": f"{day.year:04d}-{day.month:02d}",
        "reason": error.reason,
        "error": {k: v for k, v in error.as_dict().items() if k != "context"},
        "source_url": url,
        "source": source_identity or {},
        "code_version": code_version(),
        "failed_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    try:
        bucket.blob(name).upload_from_string(json.dumps(body, default=str), content_type="application/json")
    except Exception as exc:  # noqa: BLE001 - the next date then prepares the month again, as before
        logs.warning("could not record the month's failure", object=name, error_message=f"{exc}"[:300])
        return
    error.details["month_failure"] = f"gs://{bucket.name}/{name}"  # its dead letter names it: replay clears it
    logs.warning(
        "the month failed for good: recorded; its other dates fail at once with the same reason until a "
        "replay or a new version of the source file clears it",
        service=service,
        month=body["month"],
        object=name,
        reason=error.reason,
        source_url=url,
        **(source_identity or {}),
    )


@contextmanager
def recorded(bucket: Any, service: str, day: dt.date, url: str, timeout: int) -> Iterator[None]:
    """Around preparing a month: a permanent failure is recorded (then raised); a month prepared
    has no failure any more (a record another code version or URL left is deleted)."""
    try:
        yield
    except PermanentError as exc:
        remember(bucket, service, day, url, timeout, exc)
        raise
    try:
        bucket.delete_blob(record_name(service, day))
    except NotFound:
        pass
    except Exception as exc:  # noqa: BLE001 - a stale record no longer applies anyway
        logs.warning(
            "could not delete the month's old failure record", object=record_name(service, day), error=f"{exc}"[:300]
        )


def changed(recorded: dict[str, str], now: dict[str, str] | None) -> bool:
    """Does the source serve another file than the one that failed? (pure) `now` None: cannot
    tell (HEAD refused or failed): not changed. `{}`: the file is gone: changed. Otherwise any
    identity field both sides know that differs."""
    if now is None:
        return False
    if not now:
        return bool(recorded)
    return any(recorded[key] != now[key] for key in recorded.keys() & now.keys())


def raise_if_recorded(bucket: Any, service: str, day: dt.date, url: str, timeout: int) -> None:
    """The month's recorded failure, raised as the same structured error; a record that no longer
    applies is ignored (another code version or URL) or deleted (the source changed)."""
    name = record_name(service, day)
    blob = bucket.get_blob(name)
    if blob is None:
        return
    try:
        body = json.loads(blob.download_as_bytes())
    except NotFound:
        return
    except ValueError:
        body = {}
    if not isinstance(body, dict) or body.get("source_url") != url or body.get("code_version") != code_version():
        return
    if changed(dict(body.get("source") or {}), head_identity(url, timeout)):
        try:
            bucket.delete_blob(name, if_generation_match=blob.generation)
        except (NotFound, PreconditionFailed):
            pass
        logs.info("the month's source changed since it failed: preparing it again", object=name, service=service)
        return
    error = dict(body.get("error") or {})
    cls = SourceError if error.get("error") == "SourceError" else PermanentError
    raise cls(
        str(error.get("message") or body.get("reason")),
        reason=str(body.get("reason") or "permanent"),
        field=error.get("field"),
        value=error.get("value"),
        month_failure=f"gs://{bucket.name}/{name}",
        month_failure_generation=blob.generation,
        failed_at=body.get("failed_at"),
    )
