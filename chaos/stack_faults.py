"""Faults in the running stack: what a cloud does to the servers behind the pipeline.

Why these and how: each is the local form of something Google Cloud does to a deployment.
- `pg_fast` / `pg_immediate`: Cloud SQL restarting (maintenance, failover): PostgreSQL's fast
  shutdown (SIGINT: sessions cancelled, clean checkpoint) or immediate shutdown (SIGQUIT: no
  checkpoint, crash recovery on start), each timed while a day is being loaded when one is.
- `pg_terminate`: connections dropped under a live pool (`pg_terminate_backend` of every
  session of the pipeline's database).
- `gcs` / `bigquery`: the storage and BigQuery APIs failing mid-operation: the emulator killed
  (SIGKILL; the BigQuery emulator SIGTERM, its DuckDB file must stay consistent) and restarted.
- `pubsub`: the Pub/Sub emulator killed and restarted. It keeps messages in memory, so what it
  held is lost; the harness publishes again what was in flight (chaos.run), as a cloud's
  durable retry would have delivered it.
- `kill_{function}`: an instance crash: the function's process group SIGKILLed mid-request.
- `raw_deleted`: the raw copies deleted (the bucket's lifecycle rule does it after
  `raw_delete_after_days`), so the next date of a month downloads it again, and the source,
  which may now serve new bytes for the month (chaos/source.py `changed`), is met again.
Everything stopped is started again by `./local_emulator.sh up` (which starts what is not
running and re-creates the Pub/Sub resources), so the stack's own start-up code is exercised.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from local.stack import throwaway

FUNCTIONS = ("ingest", "backfill", "load_bigquery", "load_postgres")
KINDS = (
    "pg_fast",
    "pg_immediate",
    "pg_terminate",
    "gcs",
    "bigquery",
    "pubsub",
    "raw_deleted",
    *(f"kill_{name}" for name in FUNCTIONS),
)
_SIGNALS = {
    "pg_fast": ("postgres", signal.SIGINT),
    "pg_immediate": ("postgres", signal.SIGQUIT),
    "gcs": ("gcs", signal.SIGKILL),
    "bigquery": ("bigquery", signal.SIGTERM),
    "pubsub": ("pubsub", signal.SIGKILL),
    **{f"kill_{name}": (f"fn-{name}", signal.SIGKILL) for name in FUNCTIONS},
}
# The retry budget chaos was tuned with, set explicitly: the stack's default is Terraform's push
# policy (10 s..600 s backoff, 10 attempts), which the soak test (issue 21, part 6) runs with.
RETRY_BUDGET = {"TAXI_RELAY_BACKOFF_SECONDS": "1,10", "MAX_DELIVERY_ATTEMPTS": "5"}
LOAD_WAIT_SECONDS = 5.0  # how long a PostgreSQL restart waits for a day's load to hit


class Stack:
    """The throwaway stack's processes, by the pid files `local_emulator.sh` keeps."""

    def __init__(self, env: Mapping[str, str], stack_env: Mapping[str, str]) -> None:
        self.env = dict(env)  # the stack's env file (ports, credentials)
        self.stack_env = dict(stack_env)  # what local_emulator.sh runs with
        self.pid_dir = Path(env["TAXI_STATE_DIR"]) / "pids"

    def pid(self, service: str) -> int | None:
        try:
            pid, started = (self.pid_dir / f"{service}.pid").read_text().split()
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            return int(pid) if fields[19] == started and fields[0] != "Z" else None
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, service: str, sig: int, timeout: float = 30.0) -> None:
        """Signal the service's process group and wait until it is gone (SIGKILL after timeout)."""
        pid = self.pid(service)
        if pid is None:
            return
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while _group_alive(pid):
            if time.monotonic() > deadline:
                os.killpg(pid, signal.SIGKILL)
                deadline = time.monotonic() + timeout
            time.sleep(0.05)

    def inject(self, kind: str) -> dict[str, Any]:
        """One fault of `kind`, the service back up afterwards; returns what was done."""
        started = time.monotonic()
        detail: dict[str, Any] = {}
        if kind == "pg_terminate":
            detail["terminated"] = self.terminate_backends()
        elif kind == "raw_deleted":
            detail["deleted"] = self.delete_raw()
        else:
            service, sig = _SIGNALS[kind]
            if service == "postgres":
                detail["during_load"] = self.wait_for_load(LOAD_WAIT_SECONDS)
            self.stop(service, sig)
            throwaway.up(self.stack_env)
        detail["down_s"] = round(time.monotonic() - started, 2)
        return detail

    def delete_raw(self) -> list[str]:
        from shared.core import clients

        bucket = clients.storage().bucket(self.env["LAKE_BUCKET"])
        names = [blob.name for blob in bucket.list_blobs(prefix="raw/")]
        from google.api_core.exceptions import NotFound

        for name in names:
            try:
                bucket.delete_blob(name)
            except NotFound:  # quarantined meanwhile by the pipeline
                pass
        return names

    def _pg(self) -> Any:
        import pg8000.native

        return pg8000.native.Connection(
            user=self.env["PG_USER"],
            password=self.env["PG_PASSWORD"],
            host=self.env["PG_HOST"],
            port=int(self.env["PG_PORT"]),
            database=self.env["PG_DATABASE"],
            timeout=10,
        )

    def terminate_backends(self) -> int:
        """pg_terminate_backend of every other session on the pipeline's database."""
        conn = self._pg()
        try:
            rows = conn.run(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return int(rows[0][0])
        finally:
            conn.close()

    def wait_for_load(self, timeout: float) -> bool:
        """Wait (bounded) until a session is loading a day (COPY or the day's replace): True if seen."""
        deadline = time.monotonic() + timeout
        try:
            conn = self._pg()
        except Exception:  # noqa: BLE001 - a database already down: restart it all the same
            return False
        try:
            while time.monotonic() < deadline:
                rows = conn.run(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND state = 'active' "
                    "AND (query ILIKE 'COPY%' OR query ILIKE '%DELETE FROM%' OR query ILIKE '%INSERT%')"
                )
                if rows[0][0]:
                    return True
                time.sleep(0.05)
            return False
        finally:
            conn.close()


def _group_alive(pgid: int) -> bool:
    """Is any non-zombie process of the group left?"""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False
