"""One instance splits a month at a time; the others wait for its manifest instead of failing.

A backfill of a whole month delivers 31 ingest messages at once. Before this module, the
one instance that took the month split's claim did the work and the 30 others failed on
purpose, counting on Pub/Sub to redeliver them: progress depended on redelivery, which the
local emulator does not do reliably and which burns delivery attempts in Google Cloud. Now
every delivery succeeds the first time: the instances that find the month being split wait,
bounded by `SPLIT_WAIT_SECONDS`, for the holder's manifest, then publish their own date from it.

The claim is an object created with a create-only precondition. Its holder rewrites it every
HEARTBEAT_SECONDS (a new generation, so a new timestamp); a claim older than STALE_SECONDS
belongs to a crashed instance and is taken over with a generation precondition, so of two
instances taking over at once exactly one wins. A holder that finds its claim taken over
carries on: its split is as good as the new holder's (same raw file, same code), and the
manifest each writes last names its own files, which are never overwritten.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from google.api_core.exceptions import NotFound, PreconditionFailed

from shared.core import logs

HEARTBEAT_SECONDS = 10
STALE_SECONDS = 60  # six missed heartbeats: the holder is gone (crashed, killed, timed out)
POLL_FIRST, POLL_MAX = 0.5, 5.0  # waiting for the manifest: seconds between looks


class MonthClaim:
    """`acquire()` is True when this instance now holds the claim; `release()` gives it back.
    While held, a daemon thread keeps it fresh."""

    def __init__(self, bucket: Any, name: str) -> None:
        self.bucket, self.name = bucket, name
        self.split_id = uuid.uuid4().hex[:16]  # names this split's files
        self.generation: int | None = None
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write(self, if_generation_match: int) -> None:
        blob = self.bucket.blob(self.name)
        body = {"split_id": self.split_id, "heartbeat_at": dt.datetime.now(dt.UTC).isoformat()}
        blob.upload_from_string(
            json.dumps(body), content_type="application/json", if_generation_match=if_generation_match
        )
        self.generation = blob.generation

    def acquire(self) -> bool:
        try:
            self._write(if_generation_match=0)
        except PreconditionFailed:
            held = self.bucket.get_blob(self.name)
            if live(held):
                return False
            try:  # the holder is gone (or released it just now): take over, one winner
                self._write(if_generation_match=held.generation if held is not None else 0)
            except PreconditionFailed:
                return False
            logs.warning(
                "took over a month split whose holder stopped",
                object=self.name,
                stale_seconds=round(age_seconds(held), 1) if held is not None else None,
            )
        self._thread = threading.Thread(target=self._heartbeat, name="month-claim", daemon=True)
        self._thread.start()
        return True

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            held = self.generation
            if held is None:  # no generation to condition on: never overwrite the claim blindly
                self.lost = True
                logs.warning("month split claim has no generation to renew; finishing anyway", object=self.name)
                return
            try:
                self._write(if_generation_match=held)
            except PreconditionFailed:
                self.lost = True
                logs.warning("month split claim taken over by another instance; finishing anyway", object=self.name)
                return
            except Exception as exc:  # noqa: BLE001 - a missed beat is retried at the next one
                logs.warning("month split claim heartbeat failed", object=self.name, error_message=str(exc))

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self.lost and self.generation is not None:
            try:
                self.bucket.delete_blob(self.name, if_generation_match=self.generation)
            except (NotFound, PreconditionFailed):
                pass

    def __enter__(self) -> MonthClaim:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def age_seconds(blob: Any) -> float:
    """Seconds since this generation of the object was written (the holder's last heartbeat)."""
    written = blob.updated or blob.time_created
    return (dt.datetime.now(dt.UTC) - written).total_seconds()


def live(held: Any) -> bool:
    """A claim object (or None) whose holder is still there: heartbeated within STALE_SECONDS."""
    return held is not None and age_seconds(held) < STALE_SECONDS


def is_free(bucket: Any, name: str) -> bool:
    """Nobody holds the claim: never taken, released, or its holder went stale."""
    return not live(bucket.get_blob(name))


def wait_for(found: Callable[[], Any], claim_free: Callable[[], bool], deadline: float) -> Any:
    """Look for `found()` with growing pauses until it returns something, the claim is free
    (its holder finished without a manifest, or went stale: the caller tries to take it), or
    `deadline` (time.monotonic()) passes. Returns what was found, or None."""
    pause = POLL_FIRST
    while True:
        result = found()
        if result is not None or claim_free():
            return result
        if time.monotonic() + pause > deadline:
            return None
        time.sleep(pause)
        pause = min(pause * 1.5, POLL_MAX)
