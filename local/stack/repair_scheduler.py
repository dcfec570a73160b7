"""The local stack's Cloud Scheduler for the repair job: the same message, on an interval.

    python -m local.stack.repair_scheduler      # a stack service, started by ./local_emulator.sh up

Why: in Google Cloud, Terraform's `repair` job (infra/terraform/scheduler.tf) publishes
`{"services": [...], "repair": true, "from_ledger": true, "schedule": ..., "time_zone": ...}` to the
backfill topic every hour, and the pipeline heals itself from the run ledger
(shared/operate/repair.py). Locally nothing ran it, so the local stack did not heal the way the
cloud does. This publishes the same message to the same topic every
`TAXI_REPAIR_INTERVAL_SECONDS` (default 3600, Terraform's hourly; tests set it short), the
first one interval after it starts (as a cron job does not fire when it is created). Its
schedule in the message is `@every Ns`, so status says when the next repair comes. One JSON line
per publish on stdout (.state/logs/repair.log).
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Sequence
from typing import Any

from local.stack.delayer import json_log

INTERVAL_SETTING = "TAXI_REPAIR_INTERVAL_SECONDS"
DEFAULT_INTERVAL_SECONDS = 3600


def interval_seconds(value: str | None = None) -> int:
    """The interval setting, validated: a whole number of seconds from 1 to a day."""
    value = os.environ.get(INTERVAL_SETTING, "") if value is None else value
    if not value.strip():
        return DEFAULT_INTERVAL_SECONDS
    if not value.strip().isdigit() or not 1 <= int(value) <= 86400:
        raise SystemExit(f"repair_scheduler: {INTERVAL_SETTING}={value!r} must be whole seconds from 1 to 86400")
    return int(value)


def message(interval: int, services: Sequence[str] | None = None) -> dict[str, Any]:
    """What Terraform's repair job publishes (every service unless told), with this scheduler's schedule."""
    if services is None:
        from shared.core.schemas import SERVICES  # (pyarrow: not where only the message's keys are read)

        services = SERVICES
    return {"services": list(services), "repair": True, "from_ledger": True, "schedule": f"@every {interval}s"}


class RepairScheduler:
    """Publishes `message(interval)` to `topic` every `interval` seconds until `stop()`."""

    def __init__(self, topic: str, interval: int, services: Sequence[str] | None = None, publisher: Any = None) -> None:
        self.topic, self.interval, self.services = topic, interval, services
        self._publisher = publisher
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="repair-scheduler", daemon=True)
        self.published: list[str] = []

    def start(self) -> RepairScheduler:
        if self._publisher is None:
            from google.cloud import pubsub_v1

            self._publisher = pubsub_v1.PublisherClient()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            body = message(self.interval, self.services)
            try:
                message_id = self._publisher.publish(self.topic, json.dumps(body).encode()).result(timeout=60)
            except Exception as exc:  # noqa: BLE001 - a missed run is the next run's work, as in Cloud Scheduler
                json_log("repair_publish_failed", topic=self.topic, error=repr(exc)[:300])
                continue
            self.published.append(str(message_id))
            json_log("repair_published", topic=self.topic, message_id=message_id, message=body)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=70)

    def __enter__(self) -> RepairScheduler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    project, topic = os.environ.get("GCP_PROJECT"), os.environ.get("BACKFILL_TOPIC")
    if not project or not topic:
        raise SystemExit(
            "repair_scheduler: GCP_PROJECT and BACKFILL_TOPIC must be set (run through ./local_emulator.sh)"
        )
    interval = interval_seconds()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    scheduler = RepairScheduler(f"projects/{project}/topics/{topic}", interval).start()
    json_log("repair_scheduler_started", topic=scheduler.topic, interval_s=interval, message=message(interval))
    stop.wait()
    scheduler.stop()
    json_log("repair_scheduler_stopped")


if __name__ == "__main__":
    main()
