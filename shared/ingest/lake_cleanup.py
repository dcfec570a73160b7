"""Removing what a month's preparation leaves behind in the lake: superseded splits, a corrupt raw copy.

Why apart from staging: deleting is where idempotency is easiest to break (a delete must never
remove what another instance just wrote), so every delete here is conditioned on the generation
it read, and a delete that finds nothing is not an error.
"""

from __future__ import annotations

from typing import Any

from google.api_core.exceptions import NotFound, PreconditionFailed

from shared.core import logs, paths


def delete_other_splits(bucket: Any, service: str, year: int, month: int, keep: str) -> int:
    """Delete the month's splits other than `keep`, once the manifest names `keep`.

    Why: a split is superseded when the raw copy or the code changed, and one abandoned half way
    (its instance killed) is never named by any manifest; both would only wait for the lifecycle
    rule. A date still reading a superseded split's file finds it gone and reads the manifest
    again (shared/ingest/day.py), which names this split: no second split. Best effort: a failure
    leaves them to the lifecycle rule. Returns how many files were deleted."""
    kept = paths.staging_split(service, year, month, keep)
    prefix = kept.rsplit("split=", 1)[0] + "split="
    deleted = 0
    try:
        for blob in bucket.list_blobs(prefix=prefix):
            if not blob.name.startswith(kept):
                delete_if_exists(bucket, blob.name, generation=blob.generation)
                deleted += 1
    except Exception as exc:  # noqa: BLE001 - the lifecycle rule is the backstop
        logs.warning(
            "could not delete superseded staging splits; the lifecycle rule will",
            service=service,
            month=f"{year:04d}-{month:02d}",
            error=f"{type(exc).__name__}: {exc}"[:300],
        )
    return deleted


def quarantine_raw(bucket: Any, raw: Any) -> None:
    """A corrupt raw copy is moved aside for inspection, so the next attempt downloads afresh."""
    target = "quarantine/" + raw.name
    bucket.copy_blob(raw, bucket, target)
    delete_if_exists(bucket, raw.name, generation=raw.generation)


def delete_if_exists(bucket: Any, name: str, generation: int | None = None) -> None:
    try:
        bucket.delete_blob(name, if_generation_match=generation)
    except (NotFound, PreconditionFailed):
        pass
