"""The accounting of one chaos run: outcomes by kind, what is stuck, dead letters, the repair's rounds.

Why apart from chaos/run.py: the run drives a stack, this only reads what it left (the run
ledger's records, the dead letters the harness collected, the stack's logs), so it is plain
logic a unit test can feed.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaos import observe

# A `running` record written this long before the lake's storage (fake-gcs-server, which holds the
# run ledger) was killed may have lost its outcome: the ledger never fails the work it describes
# (shared/core/ledger.py), so an outcome write that met the dead store is logged and the message
# acked. Such a record stays `running`; status and the repair read it as `no_outcome` once it is
# LOST_AFTER_SECONDS old (shared/core/ledger_read.py `effective`). The final state is compared
# anyway, so chaos counts these apart instead of as stuck.
LEDGER_CRASH_WINDOW = dt.timedelta(seconds=120)


def accounting(
    pubsub_restarts: list[dt.datetime],
    records: list,
    dead: observe.DeadLetters,
    log_counts: dict[str, Any],
    ledger_kills: list[dt.datetime] | None = None,
    published_at: Mapping[tuple[str, str, int], dt.datetime] | None = None,
) -> dict[str, Any]:
    """Outcomes by kind; records still in flight after the last Pub/Sub restart are stuck, unless
    a `running` one was written just before the ledger's store was killed (`ledger_kills`), or its
    message was published before a restart that came before its attempt (`published_at`, from the
    relay's log: the relay held it across the restart, so the emulator that could redeliver it
    was gone; the harness renotified its object)."""
    last_restart = max(pubsub_restarts, default=None)
    by_outcome: dict[str, int] = {}
    for _, _, record in records:
        by_outcome[record.outcome] = by_outcome.get(record.outcome, 0) + 1
    superseded = superseded_queued(records)
    stuck, lost, held, outcome_lost = [], 0, 0, []
    for service, day, record in observe.in_flight(records):
        if (service, day, record.event_id) in superseded:
            continue
        if last_restart is not None and record.updated_at is not None and record.updated_at <= last_restart:
            lost += 1  # its message died with the emulator; republished by the harness
            continue
        if _held_across_a_restart(record, pubsub_restarts, published_at or {}):
            held += 1
            continue
        entry = {"service": service, "date": day.isoformat(), **record.as_dict()}
        if record.outcome == "running" and _before_a_kill(record.updated_at, ledger_kills or []):
            outcome_lost.append(entry)
            continue
        stuck.append(entry)
    letters = dead.event_ids()
    unmatched = [
        {"service": s, "date": d.isoformat(), **r.as_dict()}
        for s, d, r in records
        if r.outcome == "dead_lettered"
        and (r.function, r.event_id) not in letters
        and not (last_restart and r.updated_at and r.updated_at <= last_restart)
    ]
    return {
        "records_by_outcome": dict(sorted(by_outcome.items())),
        "stuck": stuck,
        "in_flight_lost_with_pubsub": lost,
        "in_flight_held_across_a_pubsub_restart": held,
        "outcome_lost_with_the_ledger_store": outcome_lost,
        "dead_letters": len(dead.letters),
        "dead_letters_by_reason": dead.by_reason(),
        "dead_lettered_without_letter": unmatched,
        **log_counts,
    }


def superseded_queued(records: list) -> set[tuple[str, dt.date, str]]:
    """Queued records an ingest record at or after them answers (the message was delivered)."""
    ingest_seen: dict[tuple[str, dt.date], dt.datetime] = {}
    for service, day, record in records:
        if record.function == "ingest" and record.updated_at:
            key = (service, day)
            ingest_seen[key] = max(record.updated_at, ingest_seen.get(key, record.updated_at))
    return {
        (s, d, r.event_id)
        for s, d, r in records
        if r.outcome == "queued" and (s, d) in ingest_seen and r.updated_at and ingest_seen[(s, d)] >= r.updated_at
    }


def repair_runs(logs: Path) -> list[dict[str, Any]]:
    """The scheduled repair's runs, from the backfill function's outcome lines (`from_ledger`):
    each run's dates republished, dates waiting and dates left to a person, in order."""
    try:
        text = (logs / "fn-backfill.log").read_text(errors="replace")
    except OSError:
        return []
    runs = []
    for line in text.splitlines():
        start = line.find("{")
        if start < 0 or '"from_ledger":true' not in line.replace(" ", ""):
            continue
        try:
            body = json.loads(line[start:])
        except ValueError:
            continue
        if isinstance(body, dict) and body.get("from_ledger") is True and "published" in body:
            runs.append({k: body.get(k) for k in ("published", "planned", "waiting", "left_to_person")})
    return runs


def relay_publish_times(logs: Path) -> dict[tuple[str, str, int], dt.datetime]:
    """(function, message id, attempt) -> when the message was published, from the relay's
    delivery lines (local/stack/push_relay.py)."""
    from local.stack.resources import PUSH_SUBSCRIPTIONS

    functions = {name: target.lower() for name, (_topic, target) in PUSH_SUBSCRIPTIONS.items()}
    try:
        text = (logs / "relay.log").read_text(errors="replace")
    except OSError:
        return {}
    found: dict[tuple[str, str, int], dt.datetime] = {}
    for line in text.splitlines():
        if '"published_at"' not in line:
            continue
        try:
            body = json.loads(line)
            function = functions[str(body["subscription"]).rsplit("/", 1)[-1]]
            found[(function, str(body["message_id"]), int(body["attempt"]))] = dt.datetime.fromisoformat(
                body["published_at"]
            )
        except (ValueError, KeyError, TypeError):
            continue
    return found


def _held_across_a_restart(
    record: Any, restarts: list[dt.datetime], published_at: Mapping[tuple[str, str, int], dt.datetime]
) -> bool:
    published = published_at.get((record.function, record.event_id, record.attempt))
    updated = record.updated_at
    return published is not None and updated is not None and any(published < restart <= updated for restart in restarts)


def _before_a_kill(updated: dt.datetime | None, kills: list[dt.datetime]) -> bool:
    return updated is not None and any(updated <= kill <= updated + LEDGER_CRASH_WINDOW for kill in kills)
