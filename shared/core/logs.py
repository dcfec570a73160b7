"""Structured JSON logs that Cloud Logging parses into severity, message and fields.

Cloud Functions (2nd gen) forwards each stdout line; a line that is a JSON object
becomes a structured entry whose `severity` and `message` keys are recognised.
Every entry point logs exactly one outcome line per event, with fields such as
`function`, `service`, `date`, `object`, `rows_*` and `seconds`. Every string is bounded.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.core.errors import bounded

_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
# A string field's most characters: Cloud Logging takes entries up to 256 KB, and a value from
# outside (a message body, an error) can be megabytes.
MAX_FIELD_CHARS = 8000
_SECRET_KEYS = ("password", "secret", "token", "credential")
_threshold = 20


def set_level(level: str) -> None:
    global _threshold
    _threshold = _LEVELS.get(level.upper(), 20)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, str):
        return bounded(value, MAX_FIELD_CHARS)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return bounded(str(value), MAX_FIELD_CHARS)


def log(severity: str, message: str, **fields: Any) -> None:
    """Write one structured entry; keys that look like secrets are masked."""
    if _LEVELS.get(severity, 20) < _threshold:
        return
    entry = {"severity": severity, "message": bounded(message, MAX_FIELD_CHARS)}
    for key, value in fields.items():
        if value is None:
            continue
        masked = any(word in key.lower() for word in _SECRET_KEYS)
        entry[key] = "***" if masked else _jsonable(value)
    sys.stdout.write(json.dumps(entry, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def debug(message: str, **fields: Any) -> None:
    log("DEBUG", message, **fields)


def info(message: str, **fields: Any) -> None:
    log("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    log("WARNING", message, **fields)


def error(message: str, **fields: Any) -> None:
    log("ERROR", message, **fields)


@contextmanager
def timed(timings: dict[str, float], step: str) -> Iterator[None]:
    """Record the wall time of a step into `timings` (reported in the outcome log)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[step] = round(time.perf_counter() - start, 3)
