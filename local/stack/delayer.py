"""Callables run after a delay on one timer thread, and the relay's JSON log lines.

Why a thread of its own: the relay waits out each failed delivery's backoff before nacking it;
waiting in a worker would let a burst of failures starve every other delivery.
"""

from __future__ import annotations

import heapq
import itertools
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any


def json_log(event: str, **fields: Any) -> None:
    line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "event": event, **fields}, default=str)
    with _LOG_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


_LOG_LOCK = threading.Lock()


class Delayer:
    """Runs callables after a delay on one thread (a heap and a condition), so that waiting
    out a backoff costs no worker. `close(run_pending=True)` runs what is still waiting."""

    def __init__(self, name: str = "relay-delayer") -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._condition = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_later(self, delay: float, function: Callable[[], None]) -> None:
        with self._condition:
            if self._closed:
                function_now = function
            else:
                heapq.heappush(self._heap, (time.monotonic() + delay, next(self._order), function))
                self._condition.notify()
                return
        function_now()

    def pending(self) -> int:
        with self._condition:
            return len(self._heap)

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._closed and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._condition.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._closed:
                    return
                _, _, function = heapq.heappop(self._heap)
            _call(function)

    def close(self, run_pending: bool = True) -> None:
        with self._condition:
            self._closed = True
            waiting = [entry[2] for entry in sorted(self._heap)]
            self._heap.clear()
            self._condition.notify()
        self._thread.join()
        if run_pending:
            for function in waiting:
                _call(function)


def _call(function: Callable[[], None]) -> None:
    try:
        function()
    except Exception as exc:  # noqa: BLE001 (a nack on a closed stream must not kill the thread)
        json_log("delayed_call_failed", error=repr(exc))
