"""fake-gcs-server killed in the middle of an upload: after `up` starts it again, the bucket lists.

The emulator writes an object's file before its metadata; a file left without metadata made every
listing over it answer 404 (chaos seeds 4 and 5, 2026-12-06), so the run ledger could not be read
again. `start_gcs` sets such files aside first (local/stack/gcs_fsck.py).
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest
from google.api_core.exceptions import NotFound

from chaos.stack_faults import Stack
from local.stack import throwaway
from shared.core import clients


def test_an_upload_killed_midway_does_not_break_listing_after_a_restart(stack):
    state = Path(os.environ["TAXI_STATE_DIR"])
    bucket = clients.storage().bucket(os.environ["LAKE_BUCKET"])
    prefix = f"runs/_fsck_test/{uuid.uuid4().hex[:12]}/"
    bucket.blob(prefix + "committed.json").upload_from_string("{}", content_type="application/json")
    orphan = state / "gcs" / os.environ["LAKE_BUCKET"] / prefix / "killed.json"
    orphan.write_text('{"outcome": "runn')  # what the kill leaves: the file, no metadata
    with pytest.raises(NotFound):  # the emulator's failure this guards against, for real
        list(bucket.list_blobs(prefix=prefix))

    env = {k: v for k, v in os.environ.items() if k != "STACK_STARTED_FILE"}
    Stack(env, env).stop("gcs", signal.SIGKILL)
    throwaway.up(env)

    assert [b.name for b in bucket.list_blobs(prefix=prefix)] == [prefix + "committed.json"]
    assert not orphan.exists()
    assert (state / "gcs-uncommitted" / os.environ["LAKE_BUCKET"] / prefix / "killed.json").is_file()
    bucket.delete_blob(prefix + "committed.json")
