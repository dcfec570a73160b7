"""Talking to the running stack as a person would: its functions over HTTP, `gcloud` to publish,
and the status function to wait on. Shared by the end-to-end tests (fixtures in conftest.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import pytest
import requests

TIMEOUT = float(os.environ.get("TAXI_E2E_TIMEOUT", "600"))
OFFSETS = {
    "ingest": 101,
    "backfill": 102,
    "load_bigquery": 103,
    "load_postgres": 104,
    "status": 105,
    "backfill_http": 106,
}


def unavailable(problem: str) -> None:
    if os.environ.get("TAXI_STACK") == "1":
        pytest.fail(problem)
    pytest.skip(problem + "; run ./local_emulator.sh test")


def function_url(name: str) -> str:
    """TAXI_FUNCTION_URL_<NAME> (local_emulator.sh env), else TAXI_PORT_BASE (or Pub/Sub's - 85) + offset."""
    explicit = os.environ.get(f"TAXI_FUNCTION_URL_{name.upper()}")
    if explicit:
        return explicit.rstrip("/")
    base = os.environ.get("TAXI_PORT_BASE")
    if not base:
        base = str(urlparse(f"tcp://{os.environ['PUBSUB_EMULATOR_HOST']}").port - 85)
    return f"http://127.0.0.1:{int(base) + OFFSETS[name]}"


def status(urls: dict[str, str], service: str, dates: list[str], fmt: str = "json") -> Any:
    response = requests.get(
        urls["status"], params={"service": service, "start": dates[0], "end": dates[-1], "format": fmt}, timeout=120
    )
    assert response.status_code == 200, f"status answered {response.status_code}: {response.text[:2000]}"
    return response.json() if fmt == "json" else response.text


def by_date(report: dict) -> dict[str, dict]:
    return {day["date"]: day for day in report["dates"]}


def wait_for(
    urls: dict[str, str],
    service: str,
    dates: list[str],
    done: Callable[[dict[str, dict]], bool],
    what: str,
    timeout: float = TIMEOUT,
) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        days = by_date(status(urls, service, dates))
        if done(days):
            return days
        if time.monotonic() > deadline:
            pytest.fail(
                f"not {what} after {timeout:.0f}s (TAXI_E2E_TIMEOUT); status now:\n"
                f"{status(urls, service, dates, 'text')}"
            )
        time.sleep(3)


def reloaded(days: dict[str, dict], old: dict[str, Any], dates: list[str]) -> bool:
    """Complete, with a trips object newer than `old` that Postgres loaded (its ledger says so)."""
    for date in dates:
        day = days[date]
        loaded = day["postgres_loaded"] or {}
        if (
            day["state"] != "complete"
            or day["lake_generation"] == old.get(date)
            or str(loaded.get("generation")) != str(day["lake_generation"])
        ):
            return False
    return all(day["state"] == "complete" for day in days.values())
