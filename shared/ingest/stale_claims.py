"""Releasing month claims whose holder died, and the half-written split each one leaves.

Why: a claim (shared/ingest/month_claim.py) is taken over only by a later date of the same
month. An ingest killed while splitting a month no other date needs left its `_claim` and its
`split=ID/` files until the lifecycle rule (chaos found one). The scheduled repair (and anyone
else) calls `release_stale`: a claim not heartbeated for STALE_SECONDS is deleted conditioned on
the generation read, so a holder that just heartbeated or an instance that just took it over
keeps it; then that claim's split is deleted unless the month's manifest names it (a holder that
wrote its manifest and died before releasing finished its work).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from google.api_core.exceptions import NotFound, PreconditionFailed

from shared.core import logs, paths
from shared.ingest.lake_cleanup import delete_if_exists
from shared.ingest.month_claim import STALE_SECONDS

CLAIM_NAME = "_claim"


def release_stale(bucket: Any, service: str, now: dt.datetime | None = None) -> list[str]:
    """Delete the service's stale claims and their unfinished splits; returns the claims released."""
    now = now or dt.datetime.now(dt.UTC)
    released = []
    for blob in bucket.list_blobs(prefix=paths.prefix("staging", service)):
        if not blob.name.endswith("/" + CLAIM_NAME):
            continue
        written = blob.updated or blob.time_created
        if written is None or (now - written).total_seconds() < STALE_SECONDS:
            continue
        split_id = _split_id(blob)
        try:
            bucket.delete_blob(blob.name, if_generation_match=blob.generation)
        except (NotFound, PreconditionFailed):  # released, heartbeated or taken over meanwhile
            continue
        removed = _remove_split(bucket, blob.name, split_id) if split_id else 0
        released.append(blob.name)
        logs.warning(
            "released a month claim whose holder stopped",
            object=blob.name,
            stale_seconds=round((now - written).total_seconds(), 1),
            split_id=split_id,
            split_files_deleted=removed,
        )
    return released


def _split_id(blob: Any) -> str | None:
    try:
        body = json.loads(blob.download_as_bytes(if_generation_match=blob.generation))
    except (NotFound, PreconditionFailed, ValueError):
        return None
    split_id = body.get("split_id") if isinstance(body, dict) else None
    return split_id if isinstance(split_id, str) and split_id.isalnum() else None


def _remove_split(bucket: Any, claim_name: str, split_id: str) -> int:
    month_prefix = claim_name[: -len(CLAIM_NAME)]
    manifest = bucket.get_blob(month_prefix + "_manifest.json")
    if manifest is not None:
        try:
            if json.loads(manifest.download_as_bytes()).get("split_id") == split_id:
                return 0  # finished: the manifest names it
        except (NotFound, ValueError, AttributeError):
            pass
    deleted = 0
    for blob in bucket.list_blobs(prefix=f"{month_prefix}split={split_id}/"):
        delete_if_exists(bucket, blob.name, generation=blob.generation)
        deleted += 1
    return deleted
