"""What heals a date that is not complete, and what a person must do when nothing will.

Why one pure module: the scheduled repair (shared/operate/repair.py) decides which dates it
republishes, and status (shared/operate/status.py) tells a person what will repair a date and
when. Both must say the same thing, so both ask `verdict` from plain data (the date's state, its
lake rows, the run ledger's deciding record and each function's latest record).

The rules:
- in flight (`queued`, `running`, `retrying`): the platform is still delivering; wait;
- `awaiting_source` (its month is not published at the source yet, within SOURCE_GRACE_DAYS of
  the month's end): wait; the daily catch-up asks for it again until the source has it;
- loads on their way: the partition is in the lake, a destination lacks it (`partial`, or a stale
  `mismatch`), no attempt is in flight or given up on, and the partition was written after the
  scheduled repair last ran: its finalize notification may sit in the loaders' backlog (a long
  backfill queues hours of loads in Google Cloud). Wait one full repair interval: republishing it
  now only writes a new generation behind the same backlog and spends a repair attempt, which
  left dates to a person in clean runs (issue 21). A notification really lost is repaired by the
  next run but one. (A first repair run, with no run before it, waits one period of its schedule:
  shared/operate/repair.py);
- repairable: the partition is in the lake and a destination lacks it or gave up (`partial`,
  `mismatch`, `dead_lettered`), an ingest message that can no longer arrive (`undelivered`), or
  a function that gave up for want of time or attempts (EXHAUSTED reasons: an outage outlived
  its retries). The scheduled repair republishes it (with `force` when the lake has it);
- bounded: the repair records each attempt on the date (one ledger record, `repair`), counting
  while the trouble stays the same; after MAX_REPAIRS attempts for the same trouble it stops and
  the date is left to a person, with the command to run;
- a person, with the command: a quarantined date, a date never asked for, a dead letter whose
  reason is permanent for the same input (`source_not_found`, `invalid_input`...).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.core import ledger_record
from shared.core.ledger_read import RunRecord

COMPLETE, PARTIAL, MISMATCH, FAILED, MISSING = "complete", "partial", "mismatch", "failed", "missing"
QUEUED, RUNNING, RETRYING = ledger_record.QUEUED, ledger_record.RUNNING, ledger_record.RETRYING
DEAD_LETTERED, UNDELIVERED = ledger_record.DEAD_LETTERED, ledger_record.UNDELIVERED
AWAITING_SOURCE = ledger_record.AWAITING_SOURCE
IN_FLIGHT = (QUEUED, RUNNING, RETRYING)
MAX_REPAIRS = 5  # scheduled repairs of one date for the same trouble before a person is asked
# A function gave up for want of time or attempts, not because of what the input says.
EXHAUSTED = frozenset(
    {"retries_exhausted", "max_event_age_exceeded", "max_delivery_attempts", "no_outcome", "message_not_delivered"}
)
WAIT, REPAIR, PERSON, NOTHING = "wait", "repair", "person", "nothing"


@dataclass(frozen=True)
class Verdict:
    action: str  # WAIT, REPAIR, PERSON or NOTHING
    why: str
    trouble: str | None = None  # what a repair attempt is counted against
    attempt: int = 0  # the repair attempt this would be (REPAIR), or how many were made (PERSON)


def trouble_of(state: str, run: RunRecord | None) -> str:
    """`dead_lettered:load_postgres:retries_exhausted`, or the state alone."""
    if run is not None and state in (DEAD_LETTERED, UNDELIVERED):
        return f"{state}:{run.function}:{run.reason or 'unknown'}"
    return state


def repair_record(runs: Iterable[RunRecord]) -> RunRecord | None:
    return next((r for r in runs if r.function == ledger_record.REPAIR), None)


def verdict(
    state: str,
    lake_rows: int | None,
    run: RunRecord | None,
    runs: Iterable[RunRecord],
    *,
    written_at: dt.datetime | None = None,
    last_repair: dt.datetime | None = None,
) -> Verdict:
    """What heals this date (pure). `written_at`: when the lake's partition was written;
    `last_repair`: when the scheduled repair last ran (None: never, so no load is waited for)."""
    if state == COMPLETE:
        return Verdict(NOTHING, "complete")
    if state in IN_FLIGHT:
        return Verdict(WAIT, "the platform is still delivering or retrying it")
    if state == AWAITING_SOURCE:
        return Verdict(WAIT, "the source has not published its month yet; the daily catch-up loads it the day it does")
    if state == FAILED:
        return Verdict(PERSON, "the latest ingest failed a data-quality check: the same data fails again")
    if state == MISSING:
        return Verdict(PERSON, "nothing ever ran for it: nobody asked for it")
    if _loads_on_their_way(state, lake_rows, run, written_at, last_repair):
        return Verdict(
            WAIT,
            f"its partition was written at {written_at:%Y-%m-%d %H:%M:%S} UTC, after the scheduled repair last ran "
            f"({last_repair:%H:%M:%S} UTC): its loads may still be on their way; if it is still {state} at the "
            "repair after next, that one republishes it",
            state,
        )
    trouble = trouble_of(state, run)
    in_lake = lake_rows is not None
    reason = run.reason if run is not None else None
    if not (in_lake or state == UNDELIVERED or (state == DEAD_LETTERED and reason in EXHAUSTED)):
        why = f"{run.function} gave up ({reason}): the same input fails again" if run else "no partition in the lake"
        return Verdict(PERSON, why, trouble)
    held = repair_record(runs)
    made = held.attempt if held is not None and held.reason == trouble else 0
    if made >= MAX_REPAIRS:
        return Verdict(PERSON, f"the scheduled repair tried {made} times and it still ends {trouble}", trouble, made)
    return Verdict(
        REPAIR, f"the scheduled repair republishes it (attempt {made + 1} of {MAX_REPAIRS})", trouble, made + 1
    )


def judge(day: Any, last_repair: dt.datetime | None) -> Verdict:
    """`verdict` of a status date (shared/operate/status.py's DayStatus)."""
    return verdict(day.state, day.lake_rows, day.run, day.runs, written_at=day.lake_written_at, last_repair=last_repair)


def _loads_on_their_way(
    state: str,
    lake_rows: int | None,
    run: RunRecord | None,
    written_at: dt.datetime | None,
    last_repair: dt.datetime | None,
) -> bool:
    if state not in (PARTIAL, MISMATCH) or lake_rows is None or run is not None:
        return False
    return written_at is not None and last_repair is not None and written_at >= last_repair


def _commands(v: Verdict, state: str, run: RunRecord | None, service: str, day: dt.date) -> dict[str, str] | None:
    if v.action != PERSON:
        return None
    date = day.isoformat()
    if state == MISSING:
        return {
            "local": f"./local_emulator.sh backfill {date} {date} {service}",
            "cloud": f'gcloud pubsub topics publish "$(terraform -chdir=infra/terraform output -raw ingest_topic)" '
            f'--message=\'{{"date":"{date}","service":"{service}"}}\'',
        }
    if state == DEAD_LETTERED and run is not None and run.reason:
        filters = f"--reason {run.reason} --function {run.function} --service {service} --date {date}"
        return {
            "local": f"./local_emulator.sh replay {filters}",
            "cloud": "python -m shared.operate.replay_cli --project PROJECT --subscription "
            '"$(terraform -chdir=infra/terraform output -raw dead_letter_subscription)" --ingest-topic '
            '"$(terraform -chdir=infra/terraform output -raw ingest_topic)" --backfill-topic '
            f'"$(terraform -chdir=infra/terraform output -raw backfill_topic)" {filters}',
        }
    message = f'{{"date":"{date}","service":"{service}","force":true}}'
    return {
        "local": f"eval \"$(./local_emulator.sh env)\"; gcloud pubsub topics publish taxi-ingest --message='{message}'",
        "cloud": f'gcloud pubsub topics publish "$(terraform -chdir=infra/terraform output -raw ingest_topic)" '
        f"--message='{message}'",
    }


def explain(
    state: str,
    lake_rows: int | None,
    run: RunRecord | None,
    runs: list[RunRecord],
    service: str,
    day: dt.date,
    next_repair: dt.datetime | None,
    written_at: dt.datetime | None = None,
    last_repair: dt.datetime | None = None,
) -> dict[str, Any] | None:
    """For a date that is not complete: what happened, what will repair it and when, or which
    command a person runs once the cause is fixed (pure; None for a complete date). `written_at`,
    `last_repair`: as for `verdict`."""
    v = verdict(state, lake_rows, run, runs, written_at=written_at, last_repair=last_repair)
    if v.action == NOTHING:
        return None
    happened = f"{run.describe()}" + (f": {run.error}" if run and run.error else "") if run else state
    when = None
    if v.action == REPAIR:
        when = next_repair.isoformat() if next_repair else None
        remedy = v.why + (f" at {when}" if when else " at its next run (it has not run yet)")
    elif v.action == WAIT:
        remedy = v.why + "; nothing to do"
    else:
        remedy = f"a person must act: {v.why}; fix the cause, then run the command"
    return {
        "happened": happened,
        "action": v.action,
        "remedy": remedy,
        "when": when,
        "repair_attempts": v.attempt if v.action == PERSON else max(v.attempt - 1, 0),
        "commands": _commands(v, state, run, service, day),
    }
