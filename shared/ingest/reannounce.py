"""A plain republish repairs a day that is up to date in the lake but was not loaded everywhere.

Why (issue 12): the loaders act on the trips object's finalize event, and that one event can be
lost (a notification never sent, a loader's subscription gone, a loader outage that outlived the
retries). A plain republish of the date then said "already up to date" and the day stayed
partial with no error anywhere. Now ingest, finding the partition up to date, reads the date's
run records (one listing, shared/core/ledger.py) and asks whether each loader loaded the partition's
current generation. If one did not and is not going to, ingest re-announces the partition: it
rewrites exactly that generation onto itself (a server-side copy, no download, conditioned on
`if_generation_match`), which makes a new generation and so a new finalize event for both
loaders (GCS sends OBJECT_FINALIZE for a rewrite as for an upload; so does fake-gcs-server).
The loaders replace the whole day, so the one that had loaded it loads the same rows again:
a repair costs one load per destination. The new generation keeps the object's bytes and
metadata and adds `reannounced_from_generation` (a rewrite in place that changes nothing may be
refused, and it tells people why the object was rewritten).

Never more than needed, because ingest messages arrive more than once (Pub/Sub is at least once,
a backfill may be retried), and a reload storm while the loaders are working would be the cost:
- a loader with a `succeeded` or `skipped_up_to_date` record of the current generation is done
  (a loader's skip of its own event's generation is Postgres's `already_loaded`);
- a loader `running` or `retrying` on it is left alone, and so is the whole date meanwhile: a
  re-announce would make it load twice;
- a loader with no record of the current generation is given REANNOUNCE_GRACE_SECONDS from the
  generation's creation, as its event may still be on its way;
- a re-announce makes a new generation, which is young: a republish arriving while its loads run
  finds them pending or running and re-announces nothing;
- a loader that dead-lettered the current generation is re-announced at once: whoever republishes
  a date asks for it to be retried (its cause may be fixed by now);
- a running or retrying record not updated for ABANDONED_AFTER_SECONDS is no longer in flight
  (an attempt that crashed on its last delivery leaves one for good);
- only a generation the ledger knows about (some record names it: ingest's write, or a loader's
  event) is judged. Run records are deleted after `runs_delete_after_days`, and records written
  before they named a generation name none: for such a day the ledger cannot tell "loaded" from
  "lost", and guessing "lost" would reload every old day a plain backfill republishes. Those are
  the scheduled `repair` backfill's (shared/operate/backfill.py), which reads the destinations themselves.
The common path, a duplicate delivery of an up-to-date date, costs one listing of that date's
run records (a few small objects).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from google.api_core.exceptions import NotFound, PreconditionFailed

from shared.core import ledger, ledger_read, ledger_record
from shared.core.settings import LOAD_BIGQUERY, LOAD_POSTGRES

LOADERS = (LOAD_BIGQUERY, LOAD_POSTGRES)
# The normal finalize -> load latency, with a wide margin: the notification (seconds, now and then
# a minute), the loader's cold start, and its `running` record. A loader silent for longer than
# this after the generation was written never got its event; a late one costs one extra load.
REANNOUNCE_GRACE_SECONDS = 120
# A retry comes within Pub/Sub's longest backoff (600 s) of the last record, and an attempt's
# `running` record turns into `retrying` after ledger_record.LOST_AFTER_SECONDS: a record of neither
# kind updated within both is an event the platform stopped delivering.
ABANDONED_AFTER_SECONDS = ledger_record.LOST_AFTER_SECONDS + 600

# A loader's state for the current generation, and the decision's reasons.
LOADED, IN_FLIGHT, PENDING = "loaded", "in_flight", "pending"
ABANDONED, DEAD_LETTERED, NOT_LOADED = "abandoned", ledger_record.DEAD_LETTERED, "not_loaded"
UNKNOWN_GENERATION, REANNOUNCED = "unknown_generation", "reannounced"


@dataclass(frozen=True)
class Decision:
    reannounce: bool
    why: str  # LOADED, IN_FLIGHT, PENDING, UNKNOWN_GENERATION, or REANNOUNCED
    loaders: Mapping[str, str]  # each loader's state for the current generation


def loader_state(
    records: Iterable[ledger_read.RunRecord], generation: int, age_seconds: float, now: dt.datetime
) -> str:
    """One loader's state for `generation`, from its run records (of any generation)."""
    mine = [ledger_read.effective(r, now) for r in records if r.generation == generation]
    outcomes = {r.outcome for r in mine}
    if outcomes & {ledger_record.SUCCEEDED, ledger_record.SKIPPED}:
        return LOADED
    working = [r for r in mine if r.outcome in (ledger_record.RUNNING, ledger_record.RETRYING)]
    if any(r.updated_at is None or (now - r.updated_at).total_seconds() <= ABANDONED_AFTER_SECONDS for r in working):
        return IN_FLIGHT
    if working:
        return ABANDONED
    if ledger_record.DEAD_LETTERED in outcomes:
        return DEAD_LETTERED
    return PENDING if age_seconds < REANNOUNCE_GRACE_SECONDS else NOT_LOADED


def decide(records: Iterable[ledger_read.RunRecord], generation: int, age_seconds: float, now: dt.datetime) -> Decision:
    """Re-announce `generation` (created `age_seconds` ago) or not, from the date's run records.

    Pure: plain records in, a decision out. Re-announces only when the ledger knows the
    generation, no loader is working on it or may still get its event, and one never will.
    """
    records = list(records)
    states = {
        loader: loader_state([r for r in records if r.function == loader], generation, age_seconds, now)
        for loader in LOADERS
    }
    if not any(r.generation == generation for r in records):
        return Decision(False, UNKNOWN_GENERATION, states)
    for waiting in (IN_FLIGHT, PENDING):
        if waiting in states.values():
            return Decision(False, waiting, states)
    if all(state == LOADED for state in states.values()):
        return Decision(False, LOADED, states)
    return Decision(True, REANNOUNCED, states)


def rewrite_onto_itself(bucket: Any, current: Any) -> int | None:
    """A new generation of `current` (same bytes and metadata): its finalize event reaches both
    loaders. None when the object changed meanwhile (another delivery re-announced it, or ingest
    rewrote it): that change has its own finalize event."""
    target = bucket.blob(current.name)
    target.content_type = current.content_type
    target.metadata = {**(current.metadata or {}), "reannounced_from_generation": str(current.generation)}
    try:  # `current` carries its generation: exactly that one is the source
        token, _, _ = target.rewrite(current, if_generation_match=current.generation)
        while token is not None:  # large or cross-location rewrites take several calls
            token, _, _ = target.rewrite(current, token=token, if_generation_match=current.generation)
    except (PreconditionFailed, NotFound):
        return None
    return int(target.generation)


def record_generation(generation: int) -> None:
    """Ingest's run record names the generation it wrote: what `decide` needs to judge it."""
    run = ledger.current()
    if run is not None:
        run.generation = int(generation)


def repair_if_lost(
    bucket: Any, service: str, day: dt.date, current: Any, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Ingest's outcome fields for a partition that is up to date: re-announced when a loader
    never loaded its current generation (see the module docstring), else nothing rewritten."""
    now = now or dt.datetime.now(dt.UTC)
    generation = int(current.generation)
    written = current.time_created or current.updated
    age = (now - written).total_seconds() if written else float("inf")
    decision = decide(ledger_read.read_runs(bucket, service, day, day).get(day, []), generation, age, now)
    fields = {"generation": generation, "loaders": dict(decision.loaders), "reannounce": decision.why}
    if decision.reannounce:
        new = rewrite_onto_itself(bucket, current)
        if new is not None:
            record_generation(new)
            return {
                **fields,
                "message": "partition up to date but not loaded everywhere: re-announced",
                "severity": "WARNING",
                "skipped": REANNOUNCED,
                "generation": new,
                "previous_generation": generation,
            }
        fields["reannounce"] = "changed_meanwhile"
    return {**fields, "message": "partition already up to date; nothing rewritten", "skipped": True}
