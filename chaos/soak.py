"""`python -m chaos --soak`: the unattended path. Outages of 10 minutes during a full-size backfill,
then nothing but the scheduled jobs; the run must end equal to a clean run with no manual step.

Why (issue 21, part 6): chaos's protocol (chaos/run.py) repairs what is not complete itself, as a
person following the runbook would. The promise of the deployment is stronger: an outage of
PostgreSQL, BigQuery or the lake that outlives a push's first retries heals by itself, first by
Pub/Sub's retries (Terraform's push policy: 10 s to 600 s backoff, 10 attempts, which the stack's
relay uses unless told otherwise) and then by the scheduled `repair` job (the local stack's repair
scheduler, every `REPAIR_INTERVAL_SECONDS` here instead of Cloud Scheduler's hour). So:
1. one backfill message for every date of the full-size month (yellow 2020-01, 1,369,765 rows);
2. at the month's first load into PostgreSQL, PostgreSQL (fast shutdown), the BigQuery emulator
   (SIGTERM) and fake-gcs-server (SIGKILL) are stopped `STAGGER_SECONDS` apart, and all started
   again (`./local_emulator.sh up`) when the last has been down `OUTAGE_SECONDS`: overlapping
   outages, each at least that long;
3. then the harness only watches: it waits until every date is complete in the lake, BigQuery and
   PostgreSQL and the run ledger is still. Only past `--settle-timeout` does it do what a person
   would (chaos's `only_missing` repair rounds), and each such publish is a manual step: the run
   fails if there is one. No Pub/Sub emulator restart is among these outages, so the harness's
   own republishing (after one) is reported apart and is 0 here;
4. the final state is compared with the clean run's (chaos/state.py: per date, the rows and an
   order-independent checksum in each destination; nothing left behind; nothing stuck).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import signal
import time
from dataclasses import dataclass
from typing import Any

from chaos import observe, state
from chaos import run as runner
from chaos.stack_faults import Stack
from chaos.workload import FULL_SIZE, Message, Month, Workload
from local.stack import throwaway

OUTAGE_SECONDS = 600.0
STAGGER_SECONDS = 30.0
REPAIR_INTERVAL_SECONDS = 120  # the local repair scheduler's interval (Terraform's is hourly)
TRIGGER_TIMEOUT_SECONDS = 900.0  # the first load into PostgreSQL must start by then
OUTAGES = (("postgres", signal.SIGINT), ("bigquery", signal.SIGTERM), ("gcs", signal.SIGKILL))
# Terraform's push policy (the relay's default when the backoff setting is empty) and attempts,
# set explicitly so that a caller's environment (the test suite's short budget) cannot shorten it.
SETTINGS = {
    "TAXI_RELAY_BACKOFF_SECONDS": "",
    "MAX_DELIVERY_ATTEMPTS": "10",
    "TAXI_REPAIR_INTERVAL_SECONDS": str(REPAIR_INTERVAL_SECONDS),
}
OPTIONS: dict[str, Any] = dict(
    rows_per_day=500,  # (the small months' size; the soak has none)
    publish_seconds=1.0,
    fault_count=0,
    fault_gap_seconds=0.0,
    quiet_seconds=30.0,
    settle_timeout=3600.0,
)


@dataclass(frozen=True)
class Outage:
    service: str  # the stack's pid-file name
    signum: int
    stop_at: float  # seconds after the trigger (the first load)
    up_at: float  # seconds after the trigger: one `up` starts all again

    @property
    def kind(self) -> str:
        """The fault's kind in the report (a BigQuery one explains a load's staging table left behind)."""
        return "bigquery" if self.service == "bigquery" else f"{self.service}_outage"


def outage_plan(seconds: float = OUTAGE_SECONDS, stagger: float = STAGGER_SECONDS) -> list[Outage]:
    """Staggered stops and one restart: each service down at least `seconds`, all overlapping (pure)."""
    up_at = (len(OUTAGES) - 1) * stagger + seconds
    return [Outage(name, signum, index * stagger, up_at) for index, (name, signum) in enumerate(OUTAGES)]


def workload() -> Workload:
    """One backfill of every date of the full-size month, as an operator would start it."""
    service, year, month_number, rows = FULL_SIZE
    month = Month(service, year, month_number, rows)
    body = {"start": month.dates[0].isoformat(), "end": month.dates[-1].isoformat(), "service": service}
    return Workload((month,), (Message("backfill", body),))


def outages(plan: list[Outage]) -> runner.Injector:
    """The injector: waits for the first load into PostgreSQL, then the plan's stops and restart."""

    def inject(stack: Stack, run: runner.Run, work: Workload, publisher: observe.Publisher, bucket: Any) -> None:
        during_load = stack.wait_for_load(TRIGGER_TIMEOUT_SECONDS)
        begun = time.monotonic()
        for outage in plan:
            _sleep_until(begun + outage.stop_at)
            when = dt.datetime.now(dt.UTC)
            stack.stop(outage.service, outage.signum)
            run.faults.append(
                {
                    "kind": outage.kind,
                    "service": outage.service,
                    "at": when.isoformat(),
                    "at_s": round(time.monotonic() - begun, 2),
                    "during_load": during_load,
                }
            )
        _sleep_until(begun + max(o.up_at for o in plan))
        for attempt in range(5):  # `up` may meet a port not yet released: try again (the outage's end, not a repair)
            try:
                throwaway.up(stack.stack_env)
                break
            except RuntimeError:
                if attempt == 4:
                    raise
                time.sleep(10)
        back = dt.datetime.now(dt.UTC)
        for fault in run.faults:
            fault["down_s"] = round((back - dt.datetime.fromisoformat(fault["at"])).total_seconds(), 1)

    return inject


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def settle_unattended(
    work: Workload,
    publisher: observe.Publisher,
    run: runner.Run,
    bucket: Any,
    env: dict[str, str],
    options: runner.Options,
) -> None:
    """Nothing but the scheduled jobs: wait until every date is complete everywhere with the ledger
    still. Past the timeout, what a person would do (chaos's repair rounds): manual steps."""
    begun = time.monotonic()
    deadline = begun + options.settle_timeout
    last, still_since, checked = None, begun, 0.0
    while time.monotonic() < deadline:
        records = observe.ledger_records(bucket, work.months)
        mark = (len(records), max((r.updated_at for _, _, r in records if r.updated_at), default=None))
        if mark != last:
            last, still_since = mark, time.monotonic()
        quiet = time.monotonic() - still_since >= options.quiet_seconds
        if quiet and time.monotonic() - checked >= options.quiet_seconds:
            checked = time.monotonic()
            months, states = runner.incomplete_months(work, env)
            run.progress.append({"at_s": round(checked - begun, 1), "not_complete": states})
            if not months and not observe.claims_held(bucket):  # a dead holder's: the repair releases it
                return
        time.sleep(5.0)
    run.progress.append({"at_s": round(time.monotonic() - begun, 1), "timed_out": True})
    runner._settle(work, publisher, run, bucket, env, dataclasses.replace(options, settle_timeout=1800.0))


def problems(report: dict[str, Any]) -> list[str]:
    """The soak's own verdict (besides chaos's, chaos/report.py): no manual step, every date equal,
    the outages as planned."""
    faulty, comparison = report["faulty"], report["comparison"]
    found = []
    if faulty["manual_steps"] or report["clean"]["manual_steps"]:
        found.append(f"manual steps: {faulty['manual_steps']} (faulty), {report['clean']['manual_steps']} (clean)")
    if comparison["dates_equal"] != comparison["dates"]:
        found.append(f"{comparison['dates_equal']} of {comparison['dates']} dates equal to the clean run")
    if len(faulty["stack_faults"]) != len(OUTAGES) or any(
        f.get("down_s", 0) < OUTAGE_SECONDS for f in faulty["stack_faults"]
    ):
        found.append(f"the outages did not happen as planned: {faulty['stack_faults']}")
    return found


def run_soak(options: runner.Options, source_dir: Any) -> dict[str, Any]:
    """The clean run and the soak run of the same backfill, and their comparison."""
    work = workload()
    clean = runner.execute("clean", work, options, source_dir, False, settings=SETTINGS, settle=settle_unattended)
    faulty = runner.execute(
        "soak",
        work,
        options,
        source_dir,
        True,
        settings=SETTINGS,
        injector=outages(outage_plan()),
        settle=settle_unattended,
    )
    comparison = state.compare(clean["state"], faulty["state"], work.dates, faulty["stack_faults"])
    report = {
        "soak": True,
        "outage_seconds": OUTAGE_SECONDS,
        "repair_interval_seconds": REPAIR_INTERVAL_SECONDS,
        "clean": {k: v for k, v in clean.items() if k != "state"},
        "faulty": {k: v for k, v in faulty.items() if k != "state"},
        "faulty_months": faulty["state"]["lake"]["manifests"],
        "comparison": comparison,
        "clean_leftovers": state.compare(clean["state"], clean["state"], work.dates)["leftovers"],
    }
    return report


def table(report: dict[str, Any]) -> str:
    faulty, clean, comparison = report["faulty"], report["clean"], report["comparison"]
    acc = faulty["accounting"]
    runs = acc["repair_runs"]
    rows = sum(m["source_rows"] for m in report["faulty_months"].values())
    lines = [
        (
            "workload",
            f"1 backfill of {len(report['faulty_months'])} month, {comparison['dates']} dates, {rows:,} source rows",
        ),
        ("outages", ", ".join(f"{f['service']} {f.get('down_s')} s" for f in faulty["stack_faults"])),
        ("retries seen", f"{acc['function_retries']} raised by functions, {acc['failed_pushes']} failed pushes"),
        ("dead letters by reason", ", ".join(f"{k} {v}" for k, v in acc["dead_letters_by_reason"].items()) or "none"),
        (
            "scheduled repair runs",
            f"{len(runs)} (every {report['repair_interval_seconds']} s), republished "
            f"{sum(r['published'] or 0 for r in runs)} dates",
        ),
        (
            "not complete, as watched",
            "; ".join(f"{p['at_s']} s {p.get('not_complete', p)}" for p in faulty["progress"][-4:]),
        ),
        ("manual steps", faulty["manual_steps"]),
        (
            "published again after Pub/Sub restarts (apart)",
            f"{faulty['republished']} messages, {faulty['renotified']} notifications",
        ),
        ("stuck in flight", len(acc["stuck"])),
        ("dates equal to the clean run", f"{comparison['dates_equal']} of {comparison['dates']}"),
        ("left behind", {k: len(v) for k, v in comparison["leftovers"].items()}),
        (
            "wall time clean / soak (s)",
            f"{clean['seconds']['total']} / {faulty['seconds']['total']} "
            f"(soak settled at {faulty['seconds']['settled']})",
        ),
        ("verdict", "PASS" if not report["problems"] else "FAIL: " + "; ".join(report["problems"])),
    ]
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in lines)
