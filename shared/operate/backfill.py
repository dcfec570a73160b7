"""Backfill: one request for a date range becomes one ingest message per (service, date).

The plan is computed first and is the same whether it is published (Pub/Sub
trigger, HTTP) or only returned (`dry_run`). Publishing goes through the
Pub/Sub client's batching (see `clients.publisher`) and every future is awaited
before the function returns, so "published N" in the outcome log is a fact, and
a failure of any publish fails the whole backfill for a retry. A retry may
republish dates already sent: that is harmless because ingest is idempotent.

`repair` is the pipeline healing itself (a scheduled `{"last_days": N, "repair": true}`, see
infra/terraform/scheduler.tf): only dates whose partition is in the lake but a destination
disagrees or a loader gave up (`partial`, `mismatch`, `dead_lettered`), never a date being
worked on (`running`, `retrying`), never one that was never ingested (its month may not be
published yet) and never a quarantined one (the same data would fail the same check). A
loader outage longer than the retries, or a finalize notification that was lost, ends there.

`only_missing` asks `shared.operate.status` which dates are not `complete` everywhere
and publishes only those. Such a date whose trips object already exists (a
partial, mismatched or quarantined date) is published with `force`, because
ingest skips a partition that is up to date with its raw copy, and only a
rewritten trips object wakes the loaders.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.core import logs
from shared.core.coverage import first_unserved, refusal
from shared.core.errors import TransientError
from shared.core.messages import BackfillRequest, IngestRequest, expand, parse_backfill
from shared.core.settings import Settings
from shared.operate import freshness, heal
from shared.operate.status import AWAITING_SOURCE, COMPLETE, DEAD_LETTERED, MISMATCH, MISSING, PARTIAL, StatusReport

PUBLISH_TIMEOUT_SECONDS = 120
REPAIRABLE = (PARTIAL, MISMATCH, DEAD_LETTERED)
StatusReader = Callable[[str, dt.date, dt.date, Settings], StatusReport]


@dataclass
class Plan:
    """The ingest messages a backfill request stands for, and why others were left out."""

    request: BackfillRequest
    messages: list[IngestRequest]
    skipped_complete: int = 0
    states: dict[str, dict[str, str]] = field(default_factory=dict)  # only_missing: service -> date -> state
    waiting: int = 0  # from_ledger: dates still in flight
    left_to_person: dict[str, dict[str, str]] = field(default_factory=dict)  # from_ledger: service -> date -> why

    @property
    def dates(self) -> int:
        return (self.request.end - self.request.start).days + 1

    def as_dict(self, published: int) -> dict[str, Any]:
        request = self.request
        body: dict[str, Any] = {
            "start": request.start.isoformat(),
            "end": request.end.isoformat(),
            "services": list(request.services),
            "force": request.force,
            "only_missing": request.only_missing,
            "dry_run": request.dry_run,
            "dates": self.dates,
            "planned": len(self.messages),
            "published": published,
            "skipped_complete": self.skipped_complete,
            "messages": [m.as_message() for m in self.messages],
        }
        if request.only_missing or request.repair:
            body["states"] = self.states
            body["repair"] = request.repair
        if request.catch_up:
            body.update(catch_up=True, left_to_person=self.left_to_person)
        if request.from_ledger:
            body.update(from_ledger=True, waiting=self.waiting, left_to_person=self.left_to_person)
            del body["start"], body["end"], body["dates"]
        return body


def _read_status(service: str, start: dt.date, end: dt.date, settings: Settings) -> StatusReport:
    from shared.operate import status_reads

    return status_reads.report(service, start, end, settings)


def make_plan(request: BackfillRequest, settings: Settings, status_reader: StatusReader | None = None) -> Plan:
    """Every (service, date) of the range, or with only_missing those not complete everywhere, or
    with repair those whose lake partition is not (or no longer being) loaded everywhere."""
    if not (request.only_missing or request.repair):
        return Plan(request, expand(request))
    reader = status_reader or _read_status
    messages: list[IngestRequest] = []
    states: dict[str, dict[str, str]] = {}
    skipped = 0
    reports = {service: reader(service, request.start, request.end, settings) for service in request.services}
    by_key = {(day.service, day.date): day for r in reports.values() for day in r.days}
    template = settings.source_url_template
    unserved = {(d.service, d.date) for r in reports.values() for d in r.days if refusal(d.service, *_ym(d), template)}
    if request.catch_up and not request.dry_run:
        for service, found in reports.items():
            fields = freshness.judge(service, [d for d in found.days if (service, d.date) not in unserved])
            fields["dates_source_cannot_serve"] = sum(1 for s, _ in unserved if s == service) or None
            logs.log(fields.pop("severity"), fields.pop("message"), function="backfill", **fields)
    left: dict[str, dict[str, str]] = {}
    for wanted in expand(request):  # date order then service order, like a plain backfill
        day = by_key.get((wanted.service, wanted.date))
        if day is not None and day.state == COMPLETE:
            skipped += 1
            continue
        if request.repair and (day is None or day.lake_rows is None or day.state not in REPAIRABLE):
            continue
        out_of_reach = day is None or (day.service, day.date) in unserved
        if request.catch_up and (out_of_reach or not _caught_up(day, left, reports[wanted.service].last_repair)):
            continue
        state = day.state if day is not None else "unknown"
        states.setdefault(wanted.service, {})[wanted.date.isoformat()] = state
        lake_has_it = day is not None and day.lake_rows is not None
        messages.append(IngestRequest(wanted.service, wanted.date, request.force or lake_has_it))
    return Plan(request, messages, skipped, states, left_to_person=left)


def _ym(day: Any) -> tuple[int, int]:
    return day.date.year, day.date.month


def _caught_up(day: Any, left: dict[str, dict[str, str]], last_repair: dt.datetime | None) -> bool:
    """The daily catch-up asks again for a date never asked for, one whose month the source had not
    published yet, and one the scheduled repair would republish; not one in flight or waited for (it
    is on its way) nor one left to a person (a permanent dead letter waits for a replay)."""
    if day.state in (MISSING, AWAITING_SOURCE):
        return True
    v = heal.judge(day, last_repair)
    if v.action == heal.PERSON:
        left.setdefault(day.service, {})[day.date.isoformat()] = v.why
    return v.action == heal.REPAIR


def publish(
    messages: list[IngestRequest],
    topic: str,
    publisher: Any,
    published_ids: list[tuple[str, dt.date, str]] | None = None,
) -> int:
    """Publish every message (batched by the client), await all futures; returns how many were sent.

    `published_ids` receives (service, date, message id) of each message sent (the run ledger's
    `queued` records). Raises TransientError if any publish failed: the backfill is retried whole.
    """
    futures = [publisher.publish(topic, json.dumps(m.as_message(), separators=(",", ":")).encode()) for m in messages]
    published, failures = 0, []
    for message, future in zip(messages, futures, strict=True):
        try:
            message_id = future.result(timeout=PUBLISH_TIMEOUT_SECONDS)
            published += 1
            if published_ids is not None:
                published_ids.append((message.service, message.date, str(message_id)))
        except Exception as exc:  # noqa: BLE001 - every failure is reported, then the whole run retried
            failures.append((message, exc))
    if failures:
        first, error = failures[0]
        raise TransientError(
            f"{len(failures)} of {len(messages)} ingest messages were not published: {type(error).__name__}: {error}",
            reason="publish_failed",
            published=published,
            failed=len(failures),
            first_failed=json.dumps(first.as_message()),
        )
    return published


QueuedRecorder = Callable[[str, str, list, dt.datetime], int]


def run(
    fields: Mapping[str, Any],
    settings: Settings,
    *,
    publisher: Any = None,
    status_reader: StatusReader | None = None,
    now: dt.datetime | None = None,
    record_queued: QueuedRecorder | None = None,
) -> tuple[Plan, int]:
    """Parse, plan and (unless dry_run) publish; returns the plan and the count published.

    Each published (service, date) gets a `queued` record in the run ledger (shared/core/ledger.py),
    written after the publish and never failing it; with an injected `publisher` (a test's
    world) only when `record_queued` is given too.
    """
    request = parse_backfill(fields, settings.backfill_max_dates, now)
    if request.from_ledger:  # only dates the ledger saw, each already judged by ingest
        return _repair_from_ledger(request, settings, publisher)
    # A repair republishes only dates the lake holds, which the source did serve.
    refused = (  # the daily catch-up skips such months instead (make_plan): its window is the calendar's
        None
        if request.repair or request.catch_up
        else first_unserved(request.services, request.start, request.end, settings.source_url_template)
    )
    if refused is not None:  # before anything is published: a month the source can never serve
        service, day, why = refused
        raise why.error("start" if "start" in fields else "last_days", f"{service} {day.isoformat()}")
    plan = make_plan(request, settings, status_reader)
    if request.dry_run or not plan.messages:
        return plan, 0
    from shared.core import clients, ledger

    if record_queued is None and publisher is None:
        record_queued = ledger.queued
    publisher = publisher if publisher is not None else clients.publisher()
    queued_at = dt.datetime.now(dt.UTC)
    sent: list[tuple[str, dt.date, str]] = []
    try:
        published = publish(plan.messages, clients.topic_path(settings.ingest_topic, settings.project), publisher, sent)
    finally:  # also what a failed backfill did publish: those messages are on their way
        if record_queued is not None and sent:
            try:
                record_queued(settings.lake_bucket, "backfill", sent, queued_at)
            except Exception as exc:  # noqa: BLE001 - the ledger never fails the work it describes
                logs.warning(
                    "run ledger: recording the queued dates failed; the backfill is unchanged",
                    function="backfill",
                    error_message=f"{type(exc).__name__}: {exc}"[:300],
                )
    return plan, published


def _repair_from_ledger(request: BackfillRequest, settings: Settings, publisher: Any) -> tuple[Plan, int]:
    """The scheduled repair (shared/operate/repair.py): every date the run ledger touched, judged by
    shared/operate/heal.py; each date republished gets its repair record, stale month claims are
    released, and the run is recorded with its schedule (status's `next_repair`)."""
    from shared.core import clients
    from shared.ingest import stale_claims
    from shared.operate import repair

    bucket = clients.storage().bucket(settings.lake_bucket)
    found = repair.plan(request, settings, bucket)
    plan = Plan(request, found.messages, found.complete, found.states, found.waiting, found.left_to_person)
    if request.dry_run:
        return plan, 0
    ran_at = dt.datetime.now(dt.UTC)
    sent: list[tuple[str, dt.date, str]] = []
    published = 0
    try:
        if found.messages:
            publisher = publisher if publisher is not None else clients.publisher()
            topic = clients.topic_path(settings.ingest_topic, settings.project)
            published = publish(found.messages, topic, publisher, sent)
    finally:  # what was published is recorded even when a publish failed
        repair.record_repairs(bucket, found, sent, ran_at)
        released = _release_stale_claims(bucket, request.services, stale_claims.release_stale)
        summary = {"published": len(sent), "left_to_person": sum(map(len, found.left_to_person.values()))}
        repair.record_run(bucket, request, ran_at, {**summary, "claims_released": len(released)})
    return plan, published


def _release_stale_claims(bucket: Any, services: tuple[str, ...], release: Callable[[Any, str], list[str]]) -> list:
    """Best effort: the backfill's identity may not delete under staging/ (infra/terraform/iam.tf grants
    it runs/ only); a refused delete is logged and the lifecycle rule stays the backstop."""
    released: list[str] = []
    for service in services:
        try:
            released += release(bucket, service)
        except Exception as exc:  # noqa: BLE001 - never fails the repair
            logs.warning(
                "repair: releasing stale month claims failed",
                function="backfill",
                service=service,
                error_message=f"{type(exc).__name__}: {exc}"[:300],
            )
    return released


def outcome(plan: Plan, published: int) -> dict[str, Any]:
    """The fields of the one outcome log line (no message list: it can be thousands long)."""
    request = plan.request
    return {
        "message": "backfill planned (dry run), nothing published"
        if request.dry_run
        else f"backfill published {published} ingest message{'' if published == 1 else 's'}",
        "services": ",".join(request.services),
        "start": request.start,
        "end": request.end,
        "dates": plan.dates,
        "planned": len(plan.messages),
        "published": published,
        "skipped_complete": plan.skipped_complete,
        "forced": sum(m.force for m in plan.messages),
        "only_missing": request.only_missing,
        "repair": request.repair,
        "from_ledger": request.from_ledger,
        "catch_up": request.catch_up,
        "waiting": plan.waiting,
        "left_to_person": sum(map(len, plan.left_to_person.values())),
        "dry_run": request.dry_run,
    }
