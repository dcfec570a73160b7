"""The scheduled repair, driven by the run ledger: every date a run touched, whatever its calendar date.

Why not a window of recent days: a backfill of 2021 runs today, and a window of the last 45
calendar days never sees its dates; a date dead-lettered by a Postgres outage stayed so until a
person ran a start/end repair. The ledger knows every date anything ran for lately, so the
repair (`{"repair": true, "from_ledger": true}`, Cloud Scheduler hourly, the local stack's
scheduler on its interval) reads:
- the run ledger: one listing of `runs/{service}/` per service (metadata only). It is bounded
  by age, not by the calendar: the lifecycle rule deletes records after `runs_delete_after_days`,
  so a 10-year history costs what ran in those days, a few objects per date touched;
- the destinations, only for the dates the ledger touched: those dates grouped into spans
  (gaps up to SPAN_GAP_DAYS merged, at most MAX_SPAN_DAYS each), one status read per span.
Each date's verdict comes from shared/operate/heal.py (what status tells people too). A date it
republishes gets the date's one `repair` record (`runs/.../repair/attempts.json`, outcome
`queued`, the attempt count and the trouble it repairs); a complete date's record is deleted, so
the count starts again next time. It also records its run (`runs/_repair/last.json`: when, and
the schedule its message carried), from which status tells when the next repair comes, and
releases month claims whose holder died (shared/ingest/stale_claims.py).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from shared.core import ledger_read, ledger_record, logs, paths
from shared.core.ledger_read import RunRecord
from shared.core.messages import BackfillRequest, IngestRequest
from shared.core.schedule import parse_schedule
from shared.core.settings import Settings
from shared.operate import heal, repair_schedule
from shared.operate.status import StatusReport

SPAN_GAP_DAYS = 31
MAX_SPAN_DAYS = 366
SpanReader = Callable[[str, dt.date, dt.date, Settings, Mapping[dt.date, list[RunRecord]]], StatusReport]


def spans(
    dates: list[dt.date], gap: int = SPAN_GAP_DAYS, longest: int = MAX_SPAN_DAYS
) -> list[tuple[dt.date, dt.date]]:
    """Sorted dates -> inclusive ranges covering them: near dates share one read (pure)."""
    found: list[tuple[dt.date, dt.date]] = []
    for day in sorted(set(dates)):
        if found and (day - found[-1][1]).days <= gap and (day - found[-1][0]).days < longest:
            found[-1] = (found[-1][0], day)
        else:
            found.append((day, day))
    return found


def _read_span(
    service: str, start: dt.date, end: dt.date, settings: Settings, runs: Mapping[dt.date, list[RunRecord]]
) -> StatusReport:
    from shared.operate import status_reads

    return status_reads.report(service, start, end, settings, runs=runs)


class LedgerPlan:
    """The dates to republish, each with its verdict, and the rest counted by why they are left."""

    def __init__(self) -> None:
        self.messages: list[IngestRequest] = []
        self.verdicts: dict[tuple[str, dt.date], heal.Verdict] = {}
        self.states: dict[str, dict[str, str]] = {}
        self.complete = 0
        self.waiting = 0
        self.left_to_person: dict[str, dict[str, str]] = {}
        self.cleared: list[str] = []  # repair records of dates complete again (name, generation)
        self.clear_generations: list[int | None] = []


def plan(
    request: BackfillRequest,
    settings: Settings,
    bucket: Any,
    reader: SpanReader | None = None,
    now: dt.datetime | None = None,
) -> LedgerPlan:
    """Every date the ledger touched, judged by heal.verdict; at most BACKFILL_MAX_DATES republished."""
    reader = reader or _read_span
    result = LedgerPlan()
    first_run = _one_period_ago(request, now or dt.datetime.now(dt.UTC))
    for service in request.services:
        runs = ledger_read.read_all_runs(bucket, service)
        for start, end in spans(list(runs)):
            report = reader(service, start, end, settings, {d: r for d, r in runs.items() if start <= d <= end})
            for day in report.days:
                if day.date not in runs:
                    continue
                _judge(result, service, day, settings.backfill_max_dates, report.last_repair or first_run)
    return result


def _one_period_ago(request: BackfillRequest, now: dt.datetime) -> dt.datetime | None:
    """For a first run (no previous run on record): a partition written within one period of the
    schedule the message carries waits for its loads, as it would after a previous run. Without
    this, the first run of a fresh deployment republished every date of a backfill under way."""
    if not request.schedule:
        return None
    period = parse_schedule(request.schedule, request.time_zone).period(now)
    return now - period if period is not None else None


def _judge(result: LedgerPlan, service: str, day: Any, limit: int, last_repair: dt.datetime | None) -> None:
    v = heal.judge(day, last_repair)
    if v.action == heal.NOTHING:
        result.complete += 1
        held = heal.repair_record(day.runs)
        if held is not None:
            result.cleared.append(paths.run_record(service, day.date, ledger_record.REPAIR, ledger_record.REPAIR_EVENT))
            result.clear_generations.append(held.object_generation)
    elif v.action == heal.WAIT:
        result.waiting += 1
    elif v.action == heal.PERSON:
        result.left_to_person.setdefault(service, {})[day.date.isoformat()] = v.why
    elif len(result.messages) < limit:  # the rest waits for the next run
        result.messages.append(IngestRequest(service, day.date, day.lake_rows is not None))
        result.verdicts[(service, day.date)] = v
        result.states.setdefault(service, {})[day.date.isoformat()] = day.state


def record_repairs(
    bucket: Any, result: LedgerPlan, published: list[tuple[str, dt.date, str]], queued_at: dt.datetime
) -> None:
    """Each republished date's repair record (attempt, trouble, the new message id); each complete
    date's record deleted (conditioned on the generation listed). Failures are logged, never raised."""
    for service, day, message_id in published:
        v = result.verdicts.get((service, day))
        if v is None:
            continue
        run = ledger_record.Run(
            ledger_record.REPAIR,
            ledger_record.REPAIR_EVENT,
            message_id,
            None,
            bucket=bucket,
            service=service,
            date=day,
            attempt=v.attempt,
            started_at=queued_at,
        )
        body = ledger_record.record_body(run, ledger_record.QUEUED, reason=v.trouble, error=v.why, now=queued_at)
        _guarded(f"repair record {run.name}", partial(_upload, bucket, run.name, body))
    for name, generation in zip(result.cleared, result.clear_generations, strict=True):
        _guarded(f"delete {name}", partial(_delete, bucket, name, generation))


def record_run(bucket: Any, request: BackfillRequest, ran_at: dt.datetime, summary: Mapping[str, Any]) -> None:
    """When the repair ran and on which schedule: status's `next_repair` (never fails the repair)."""
    body = {"ran_at": ran_at.isoformat(), "schedule": request.schedule, "time_zone": request.time_zone, **summary}
    _guarded("recording its run", lambda: repair_schedule.write(bucket, body))


def _upload(bucket: Any, name: str | None, body: dict[str, Any]) -> None:
    blob = bucket.blob(name)
    blob.metadata = ledger_record.record_metadata(body)
    blob.upload_from_string(
        json.dumps(body, default=str), content_type="application/json", timeout=ledger_record.WRITE_TIMEOUT_SECONDS
    )


def _delete(bucket: Any, name: str, generation: int | None) -> None:
    from google.api_core.exceptions import NotFound, PreconditionFailed

    try:
        bucket.delete_blob(name, if_generation_match=generation)
    except (NotFound, PreconditionFailed):  # gone, or rewritten since the listing: leave it
        pass


def _guarded(what: str, action: Callable[[], None]) -> None:
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - bookkeeping never fails the repair it describes
        logs.warning(f"repair: {what} failed", function="backfill", error_message=f"{type(exc).__name__}: {exc}"[:300])
