"""One run of the workload on a throwaway stack, with or without faults, to a settled final state.

The protocol, the same for the clean run and the faulty one:
1. A throwaway stack (local/stack/throwaway.py) whose source is a ChaosSource (chaos/source.py).
2. The workload's messages published in their seeded order, paced over `publish_seconds`;
   meanwhile (faulty run) the source fails at its rate and the stack faults fire on their
   seeded schedule (chaos/stack_faults.py). After a Pub/Sub restart, what the emulator lost
   is published again (chaos/redeliver.py), as a durable Pub/Sub would have delivered it.
3. Faults off, then settle: wait until the run ledger has been still for `quiet_seconds`;
   if a date is not `complete` everywhere, publish what the deployment's scheduled `repair`
   job publishes (an `only_missing` backfill of the dates' months) and wait again.
4. Read the final state (chaos/state.py) and the accounting: dead letters by reason, the
   ledger's records by outcome, anything still in flight, the stack's retry counts.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos import observe, redeliver, state
from chaos.source import serve
from chaos.stack_faults import KINDS, RETRY_BUDGET, Stack
from chaos.workload import Workload
from local.stack import throwaway

HANG_SECONDS = 15.0
STACK_SETTINGS = {"DOWNLOAD_TIMEOUT_SECONDS": "10", **RETRY_BUDGET}  # below HANG_SECONDS: a hang is a timeout


@dataclass
class Options:
    seed: int
    quick: bool
    rate: float
    port_base: int
    work: Path
    rows_per_day: int
    publish_seconds: float
    fault_count: int
    fault_gap_seconds: float
    quiet_seconds: float
    settle_timeout: float
    max_repair_rounds: int = 3  # only_missing backfill rounds before the run is judged as it stands


@dataclass
class Run:
    name: str
    faults: list[dict[str, Any]] = field(default_factory=list)
    pubsub_restarts: list[dt.datetime] = field(default_factory=list)
    published: list[tuple[dt.datetime, Any]] = field(default_factory=list)  # (when, workload.Message)
    republished: int = 0
    renotified: int = 0  # finalize notifications published again after a Pub/Sub restart
    repair_backfills: int = 0
    repair_rounds: list[dict[str, Any]] = field(default_factory=list)  # what each round found not complete


def fault_schedule(options: Options) -> list[tuple[float, str]]:
    """(seconds after the first publish, kind): every kind before any repeats, seeded order."""
    rng = random.Random(f"{options.seed}/stack")
    kinds: list[str] = []
    while len(kinds) < options.fault_count:
        batch = list(KINDS)
        rng.shuffle(batch)
        kinds += batch
    at, out = 2.0, []
    for kind in kinds[: options.fault_count]:
        out.append((round(at, 2), kind))
        at += options.fault_gap_seconds * rng.uniform(0.6, 1.4)
    return out


def execute(name: str, workload: Workload, options: Options, source_dir: Path, faulty: bool) -> dict[str, Any]:
    """Run the workload on a fresh stack; returns the final state and the run's accounting."""
    work = options.work / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    source = serve(
        source_dir, seed=options.seed, rate=options.rate, hang_seconds=HANG_SECONDS, rows_per_day=options.rows_per_day
    )
    template = (
        f"http://127.0.0.1:{source.server_address[1]}/{{service}}/{{service}}_tripdata_{{year}}-{{month:02d}}.csv.gz"
    )
    extra = {"SOURCE_URL_TEMPLATE": template, **STACK_SETTINGS}
    run, started = Run(name), time.monotonic()
    try:
        with throwaway.throwaway_stack(work, options.port_base, extra) as env:
            os.environ.update(env)
            from shared.core import clients
            from shared.core.settings import Settings

            clients.reset()
            stack = Stack(env, throwaway.stack_env(Path(env["TAXI_STATE_DIR"]), options.port_base, extra))
            bucket = clients.storage().bucket(Settings.from_env(env).lake_bucket)
            dead = observe.DeadLetters(env).start()
            publisher = observe.Publisher(env)
            injector = None
            if faulty:
                source.enabled = True
                injector = threading.Thread(
                    target=_inject,
                    args=(stack, run, fault_schedule(options), workload, publisher, bucket),
                    name="chaos-faults",
                    daemon=True,
                )
            active_started = time.monotonic()
            if injector:
                injector.start()
            _publish_workload(workload, publisher, run, options.publish_seconds)
            if injector:
                injector.join()
            source.enabled = False
            active = time.monotonic() - active_started
            _settle(workload, publisher, run, bucket, env, options)
            settled = time.monotonic() - active_started
            time.sleep(2)  # a last dead letter on its way
            final = state.snapshot(env, workload.dates)
            records = observe.ledger_records(bucket, workload.months)
            dead.stop()
            accounting = _accounting(run, records, dead, throwaway.log_counts(Path(env["TAXI_STATE_DIR"])))
    finally:
        source.shutdown()
    return {
        "name": name,
        "state": final,
        "accounting": accounting,
        "source": {"requests": source.requests, "injected": source.injected},
        "stack_faults": run.faults,
        "published": len(run.published),
        "republished": run.republished,
        "renotified": run.renotified,
        "repair_backfills": run.repair_backfills,
        "repair_rounds": run.repair_rounds,
        "seconds": {
            "active": round(active, 1),
            "settled": round(settled, 1),
            "total": round(time.monotonic() - started, 1),
        },
    }


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _publish_workload(workload: Workload, publisher: observe.Publisher, run: Run, seconds: float) -> None:
    gap = seconds / max(1, len(workload.messages))
    begun = time.monotonic()
    for index, message in enumerate(workload.messages):
        delay = begun + index * gap - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        when = _now()
        publisher.publish(message.topic, message.body)
        run.published.append((when, message))


def _inject(
    stack: Stack,
    run: Run,
    schedule: list[tuple[float, str]],
    workload: Workload,
    publisher: observe.Publisher,
    bucket: Any,
) -> None:
    begun = time.monotonic()
    for at, kind in schedule:
        delay = begun + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        when = _now()
        try:
            detail = stack.inject(kind)
            error = None
        except Exception as exc:  # noqa: BLE001 - recorded; the run goes on (and its state is compared)
            detail, error = {}, f"{type(exc).__name__}: {exc}"[:500]
        run.faults.append(
            {
                "kind": kind,
                "at_s": round(time.monotonic() - begun, 2),
                "at": when.isoformat(),
                **detail,
                **({"error": error} if error else {}),
            }
        )
        if kind == "pubsub":
            run.pubsub_restarts.append(when)
            run.republished += redeliver.republish_lost(when, workload, publisher, run.published, bucket)
            run.renotified += redeliver.renotify_lost(workload, publisher, bucket)


def _settle(
    workload: Workload, publisher: observe.Publisher, run: Run, bucket: Any, env: dict[str, str], options: Options
) -> None:
    """Wait for a still ledger; repair what is not complete (as the scheduled repair job would)."""
    deadline = time.monotonic() + options.settle_timeout
    last, still_since = None, time.monotonic()
    while time.monotonic() < deadline:
        records = observe.ledger_records(bucket, workload.months)
        mark = (
            len(records),
            max((r.updated_at for _, _, r in records if r.updated_at), default=None),
            sum(r.outcome in observe.TERMINAL for _, _, r in records),
        )
        if mark != last:
            last, still_since = mark, time.monotonic()
        elif time.monotonic() - still_since >= options.quiet_seconds:
            months, states = incomplete_months(workload, env)
            if not months or len(run.repair_rounds) >= options.max_repair_rounds:
                return
            run.repair_rounds.append({"states": states, "months": len(months)})
            for month in months:
                dates = month.dates
                publisher.publish(
                    "backfill",
                    {
                        "start": dates[0].isoformat(),
                        "end": dates[-1].isoformat(),
                        "service": month.service,
                        "only_missing": True,
                    },
                )
                run.repair_backfills += 1
            still_since = time.monotonic()
        time.sleep(1.0)


def incomplete_months(workload: Workload, env: dict[str, str]) -> tuple[list[Any], dict[str, int]]:
    """The workload's months with a date not `complete` in the lake, BigQuery and Postgres, and
    those dates by state (`partial`, `dead_lettered`, ...)."""
    from shared.core.settings import Settings
    from shared.operate import status, status_reads

    settings = Settings.from_env(env)
    out: list[Any] = []
    states: dict[str, int] = {}
    for month in workload.months:
        report = status_reads.report(month.service, month.dates[0], month.dates[-1], settings)
        not_complete = [day.state for day in report.days if day.state != status.COMPLETE]
        if not_complete:
            out.append(month)
        for state_name in not_complete:
            states[state_name] = states.get(state_name, 0) + 1
    return out, dict(sorted(states.items()))


def _accounting(run: Run, records: list, dead: observe.DeadLetters, log_counts: dict[str, int]) -> dict[str, Any]:
    """Outcomes by kind; records still in flight after the last Pub/Sub restart are stuck."""
    last_restart = max(run.pubsub_restarts, default=None)
    by_outcome: dict[str, int] = {}
    for _, _, record in records:
        by_outcome[record.outcome] = by_outcome.get(record.outcome, 0) + 1
    superseded = _superseded_queued(records)
    stuck, lost = [], 0
    for service, day, record in observe.in_flight(records):
        if (service, day, record.event_id) in superseded:
            continue
        if last_restart is not None and record.updated_at is not None and record.updated_at <= last_restart:
            lost += 1  # its message died with the emulator; republished by the harness
            continue
        stuck.append({"service": service, "date": day.isoformat(), **record.as_dict()})
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
        "dead_letters": len(dead.letters),
        "dead_letters_by_reason": dead.by_reason(),
        "dead_lettered_without_letter": unmatched,
        **log_counts,
    }


def _superseded_queued(records: list) -> set[tuple[str, dt.date, str]]:
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
