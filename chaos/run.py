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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from chaos import accounting, observe, redeliver, state
from chaos.source import serve
from chaos.stack_faults import KINDS, RETRY_BUDGET, Stack
from chaos.workload import Workload
from local.stack import throwaway

HANG_SECONDS = 15.0
# The download timeout below HANG_SECONDS (a hang is a timeout); the scheduled repair every minute
# (Terraform's is hourly), as the deployment heals: it releases a killed ingest's claim.
REPAIR_INTERVAL_SECONDS = 60
STACK_SETTINGS = {
    "DOWNLOAD_TIMEOUT_SECONDS": "10",
    "TAXI_REPAIR_INTERVAL_SECONDS": str(REPAIR_INTERVAL_SECONDS),
    **RETRY_BUDGET,
}


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
    manual_steps: int = 0  # what the harness published beyond the workload, Pub/Sub's losses apart
    progress: list[dict[str, Any]] = field(default_factory=list)  # what an unattended settle saw


# A fault injector: runs in its own thread while the workload is published (chaos: `_inject`).
Injector = Callable[["Stack", "Run", Workload, observe.Publisher, Any], None]
Settler = Callable[[Workload, observe.Publisher, "Run", Any, dict[str, str], "Options"], None]


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


def execute(
    name: str,
    workload: Workload,
    options: Options,
    source_dir: Path,
    faulty: bool,
    *,
    settings: Mapping[str, str] = STACK_SETTINGS,
    injector: Injector | None = None,
    settle: Settler | None = None,
) -> dict[str, Any]:
    """Run the workload on a fresh stack; returns the final state and the run's accounting.
    `settings`: the stack's; `injector` (faulty run): the faults, by default chaos's seeded schedule;
    `settle`: how the run is brought to its final state, by default `_settle` (chaos's protocol)."""
    work = options.work / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    source = serve(
        source_dir, seed=options.seed, rate=options.rate, hang_seconds=HANG_SECONDS, rows_per_day=options.rows_per_day
    )
    template = (
        f"http://127.0.0.1:{source.server_address[1]}/{{service}}/{{service}}_tripdata_{{year}}-{{month:02d}}.csv.gz"
    )
    extra = {"SOURCE_URL_TEMPLATE": template, **settings}
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
            thread = None
            if faulty:
                source.enabled = injector is None  # a soak's outages are the stack's, not the source's
                inject = injector or partial(_inject, schedule=fault_schedule(options))
                thread = threading.Thread(
                    target=inject, args=(stack, run, workload, publisher, bucket), name="chaos-faults", daemon=True
                )
            active_started = time.monotonic()
            if thread:
                thread.start()
            _publish_workload(workload, publisher, run, options.publish_seconds)
            if thread:
                thread.join()
            source.enabled = False
            active = time.monotonic() - active_started
            (settle or _settle)(workload, publisher, run, bucket, env, options)
            settled = time.monotonic() - active_started
            time.sleep(2)  # a last dead letter on its way
            final = state.snapshot(env, workload.dates)
            records = observe.ledger_records(bucket, workload.months)
            dead.stop()
            logs = Path(env["TAXI_STATE_DIR"])
            counts = {**throwaway.log_counts(logs), "repair_runs": accounting.repair_runs(logs / "logs")}
            store_kills = [dt.datetime.fromisoformat(f["at"]) for f in run.faults if f["kind"] in ("gcs", "gcs_outage")]
            published_at = accounting.relay_publish_times(logs / "logs")
            account = accounting.accounting(run.pubsub_restarts, records, dead, counts, store_kills, published_at)
    finally:
        source.shutdown()
    return {
        "name": name,
        "state": final,
        "accounting": account,
        "source": {"requests": source.requests, "injected": source.injected},
        "stack_faults": run.faults,
        "published": len(run.published),
        "republished": run.republished,
        "renotified": run.renotified,
        "repair_backfills": run.repair_backfills,
        "repair_rounds": run.repair_rounds,
        "manual_steps": run.manual_steps,
        "progress": run.progress,
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
    workload: Workload,
    publisher: observe.Publisher,
    bucket: Any,
    schedule: list[tuple[float, str]],
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
            if not months and observe.claims_held(bucket):  # the scheduled repair releases a dead holder's
                still_since = time.monotonic()
                time.sleep(1.0)
                continue
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
                run.manual_steps += 1
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
