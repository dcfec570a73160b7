"""Which dates are loaded where: the truth read from the lake, BigQuery and Postgres.

Nothing here trusts a log or a bookkeeping table alone. For one service and an inclusive date
range, shared/operate/status_reads.py reads:
- the lake: `trips/` objects and their `rows_written` metadata, `rejects/` objects'
  `rows_rejected`, and `quarantine/` objects (a quarantine newer than the trips object means the
  latest ingest of that date failed its checks);
- BigQuery: a grouped COUNT(*) per `pickup_date` of `{service}_trips`;
- Postgres: a grouped count per `pickup_date` of `{schema}.{service}_trips` and
  the newest `loads` ledger entry per date (which generation was loaded);
- the run ledger (`runs/`, shared/core/ledger_read.py), one listing: where the counts say `missing`
  or `partial`, a date whose work is in flight or was given up on is `queued`, `running`, `retrying`
  or `dead_lettered` instead, one whose month the source has not published yet `awaiting_source`:
  a date being processed never reads as never asked for. The counts still decide `complete`.
A table or ledger that does not exist yet means 0 rows, not an error: a fresh project is simply all
`missing`. This module is the model: the classification (`classify`, `build_report`) is a pure
function of what the readers return, so it is unit-tested from plain data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.core import ledger_read
from shared.ingest.source import source_url
from shared.operate import heal
from shared.operate.heal import (
    AWAITING_SOURCE,
    COMPLETE,
    DEAD_LETTERED,
    FAILED,
    MISMATCH,
    MISSING,
    PARTIAL,
    QUEUED,
    RETRYING,
    RUNNING,
    UNDELIVERED,
)

STATES = (
    COMPLETE,
    AWAITING_SOURCE,
    QUEUED,
    RUNNING,
    RETRYING,
    PARTIAL,
    MISMATCH,
    FAILED,
    UNDELIVERED,
    DEAD_LETTERED,
    MISSING,
)
LEDGER_STATES = (QUEUED, RUNNING, RETRYING, UNDELIVERED, DEAD_LETTERED, AWAITING_SOURCE)
STATE_MEANING = {
    COMPLETE: "same rows in the lake, BigQuery and Postgres",
    AWAITING_SOURCE: "not loaded: the source has not published its month yet (not an error; loaded the day it does)",
    QUEUED: "not everywhere yet: a backfill published its ingest message, not delivered yet",
    UNDELIVERED: "not everywhere: its ingest message was published but can no longer be delivered",
    RUNNING: "not everywhere yet: a function is working on it now",
    RETRYING: "not everywhere yet: an attempt failed and the platform retries it",
    DEAD_LETTERED: "not everywhere: a function gave up on it (see the reason and the dead-letter topic)",
    PARTIAL: "in some places only",
    MISMATCH: "everywhere, but the counts (or the loaded version) differ",
    FAILED: "the latest ingest was quarantined by a data-quality check",
    MISSING: "nowhere",
}


def classify(
    lake_rows: int | None,
    bigquery_rows: int | None,
    postgres_rows: int | None,
    *,
    failed: bool = False,
    stale: bool = False,
) -> str:
    """One state from the three counts. `lake_rows is None` means no trips object.

    An empty day (the lake object exists with 0 rows, nothing loaded) is
    complete: there was nothing to load. A date held somewhere and absent (0
    rows) somewhere else is partial; held everywhere with different counts is a
    mismatch, as is equal counts when Postgres loaded another generation
    (`stale`). A failed (quarantined) latest ingest wins over everything.
    """
    if failed:
        return FAILED
    bq, pg = bigquery_rows or 0, postgres_rows or 0
    if lake_rows is None and bq == 0 and pg == 0:
        return MISSING
    if lake_rows is not None and lake_rows == bq == pg:
        return MISMATCH if stale else COMPLETE
    counts = (lake_rows or 0, bq, pg)
    if lake_rows is None or 0 in counts:
        return PARTIAL
    return MISMATCH


@dataclass(frozen=True)
class LakeDay:
    """What the lake holds for one date (all optional: any object may be absent)."""

    rows: int | None = None
    rejected: int | None = None
    generation: int | None = None
    written_at: dt.datetime | None = None
    quarantined_at: dt.datetime | None = None
    quarantine_reason: str | None = None

    @property
    def failed(self) -> bool:
        """Quarantined after (or without) the current trips object: the latest attempt failed."""
        if self.quarantined_at is None:
            return False
        return self.written_at is None or self.quarantined_at > self.written_at


@dataclass(frozen=True)
class LedgerEntry:
    generation: str | None
    rows: int | None
    object: str | None
    loaded_at: dt.datetime | None


@dataclass
class DayStatus:
    service: str
    date: dt.date
    state: str
    lake_rows: int | None
    rejected_rows: int | None
    bigquery_rows: int
    postgres_rows: int
    lake_generation: int | None = None
    postgres_loaded: LedgerEntry | None = None
    notes: list[str] = field(default_factory=list)
    runs: list[ledger_read.RunRecord] = field(default_factory=list)  # each function's latest attempt
    run: ledger_read.RunRecord | None = None  # the one behind running / retrying / dead_lettered
    explanation: dict[str, Any] | None = None  # not complete: what happened, what repairs it, when (heal.explain)
    lake_written_at: dt.datetime | None = None  # when the lake's partition was written (heal waits for its loads)

    @property
    def label(self) -> str:
        """The state with what explains it: `retrying (attempt 3, download_failed)`."""
        if self.run is None or self.state not in LEDGER_STATES:
            return self.state
        if self.state in (QUEUED, UNDELIVERED):
            return f"{self.state} ({self.run.function})"
        if self.state == AWAITING_SOURCE:
            return self.state
        if self.state == DEAD_LETTERED:
            return f"{self.state} ({self.run.reason or 'unknown'})"
        why = f", {self.run.reason}" if self.run.reason else ""
        return f"{self.state} (attempt {self.run.attempt}{why})"

    def as_dict(self) -> dict[str, Any]:
        ledger = self.postgres_loaded
        return {
            "date": self.date.isoformat(),
            "service": self.service,
            "state": self.state,
            "lake_rows": self.lake_rows,
            "rejected_rows": self.rejected_rows,
            "bigquery_rows": self.bigquery_rows,
            "postgres_rows": self.postgres_rows,
            "lake_generation": self.lake_generation,
            "lake_written_at": self.lake_written_at.isoformat() if self.lake_written_at else None,
            "postgres_loaded": None
            if ledger is None
            else {
                "generation": ledger.generation,
                "rows": ledger.rows,
                "object": ledger.object,
                "loaded_at": ledger.loaded_at.isoformat() if ledger.loaded_at else None,
            },
            "notes": list(self.notes),
            "run": None if self.run is None else self.run.as_dict(),
            "runs": [r.as_dict() for r in self.runs],
            "explanation": self.explanation,
        }


@dataclass
class StatusReport:
    service: str
    start: dt.date
    end: dt.date
    days: list[DayStatus]
    source_urls: dict[str, str] = field(default_factory=dict)
    generated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    next_repair: dt.datetime | None = None  # the scheduled repair's next run, from its schedule
    last_repair: dt.datetime | None = None  # when it last ran (a partition written since waits for its loads)

    def summary(self) -> dict[str, int]:
        counts = {state: 0 for state in STATES}
        for day in self.days:
            counts[day.state] += 1
        return counts

    def not_complete(self) -> list[DayStatus]:
        return [day for day in self.days if day.state != COMPLETE]

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "generated_at": self.generated_at.isoformat(),
            "next_repair": self.next_repair.isoformat() if self.next_repair else None,
            "last_repair": self.last_repair.isoformat() if self.last_repair else None,
            "summary": self.summary(),
            "states": dict(STATE_MEANING),
            "source_urls": dict(self.source_urls),
            "dates": [day.as_dict() for day in self.days],
        }


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    """Inclusive of both ends."""
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def build_report(
    service: str,
    start: dt.date,
    end: dt.date,
    lake: Mapping[dt.date, LakeDay],
    bigquery: Mapping[dt.date, int],
    postgres: Mapping[dt.date, int],
    ledger: Mapping[dt.date, LedgerEntry],
    source_template: str | None = None,
    runs: Mapping[dt.date, list[ledger_read.RunRecord]] | None = None,
    now: dt.datetime | None = None,
    next_repair: dt.datetime | None = None,
    last_repair: dt.datetime | None = None,
) -> StatusReport:
    """Combine what each place holds into one status per date (pure: plain data in, report out);
    each date not complete says what heals it and when (`next_repair`: the scheduled repair's
    next run; `last_repair`: its last), or the command a person runs (shared/operate/heal.py)."""
    now = now or dt.datetime.now(dt.UTC)
    days = []
    for day in date_range(start, end):
        held = lake.get(day, LakeDay())
        bq, pg, loaded = bigquery.get(day, 0), postgres.get(day, 0), ledger.get(day)
        notes = []
        stale = False
        if loaded and loaded.generation and held.generation is not None and pg:
            stale = str(loaded.generation) != str(held.generation)
            if stale:
                notes.append(f"postgres holds generation {loaded.generation}, the lake {held.generation}")
        if held.failed:
            notes.append(f"quarantined: {held.quarantine_reason or 'failed a data-quality check'}")
        state = classify(held.rows, bq, pg, failed=held.failed, stale=stale)
        if state in (PARTIAL, MISMATCH):
            notes.extend(_differences(held.rows, bq, pg))
        attempts = (runs or {}).get(day, [])
        run = ledger_read.in_flight(attempts, now) if state in (MISSING, PARTIAL) else None
        if run is not None:
            state = run.outcome
            notes.insert(0, f"{run.describe()}" + (f": {run.error}" if run.error else ""))
        latest = ledger_read.latest_by_function(attempts)
        explanation = heal.explain(
            state, held.rows, run, latest, service, day, next_repair, held.written_at, last_repair
        )
        days.append(
            DayStatus(
                service,
                day,
                state,
                held.rows,
                held.rejected,
                bq,
                pg,
                held.generation,
                loaded,
                notes,
                latest,
                run,
                explanation,
                held.written_at,
            )
        )
    urls: dict[str, str] = {}
    if source_template:
        for day in date_range(start, end):
            urls.setdefault(f"{day:%Y-%m}", source_url(source_template, service, day.year, day.month))
    return StatusReport(service, start, end, days, urls, now, next_repair, last_repair)


def _differences(lake_rows: int | None, bq: int, pg: int) -> list[str]:
    expected = lake_rows or 0
    notes = [] if lake_rows is not None else ["no trips object in the lake"]
    for name, rows in (("bigquery", bq), ("postgres", pg)):
        if rows != expected:
            notes.append(f"{name} has {rows} rows, the lake {expected}" if rows else f"not in {name}")
    return notes
