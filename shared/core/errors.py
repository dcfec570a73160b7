"""One error split for the whole pipeline: permanent (dead-letter, ack) vs transient (retry).

Library code raises these two families; foreign exceptions (HTTP, Google API,
database) are translated once, in `classify`, at the function boundary. The rule
the entry points follow is that of Cloud Functions' retry model: return = ack,
raise = redeliver, so only a transient error may ever escape an entry point.
"""

from __future__ import annotations

from typing import Any

MAX_VALUE_CHARS = 300
MAX_MESSAGE_CHARS = 1000


def bounded(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class PipelineError(Exception):
    """Base: carries a machine-readable reason and the offending field and value."""

    reason = "error"

    def __init__(
        self, message: str, *, reason: str | None = None, field: str | None = None, value: Any = None, **details: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason:
            self.reason = reason
        self.field = field
        self.value = value
        self.details = details

    def as_dict(self) -> dict[str, Any]:
        """The structured error, bounded: a value from outside may be megabytes (a 6 MB `date`),
        and this dict goes into a log line and a dead letter, which must stay publishable."""
        out: dict[str, Any] = {
            "error": type(self).__name__,
            "reason": self.reason,
            "message": bounded(self.message, MAX_MESSAGE_CHARS),
        }
        if self.field is not None:
            out["field"] = bounded(str(self.field), MAX_VALUE_CHARS)
            value = self.value if isinstance(self.value, (str, int, float, bool, type(None))) else repr(self.value)
            out["value"] = bounded(value, MAX_VALUE_CHARS) if isinstance(value, str) else value
        out.update({k: v for k, v in self.details.items() if v is not None})
        return out


class PermanentError(PipelineError):
    """Retrying cannot help: bad input, bad data, failed checks. Dead-lettered, acked."""

    reason = "permanent"


class TransientError(PipelineError):
    """A retry may succeed: timeouts, 5xx, 429, lost connections, lock contention."""

    reason = "transient"


class ValidationError(PermanentError):
    reason = "invalid_input"


class ConfigError(PermanentError):
    reason = "invalid_setting"


class SourceError(PermanentError):
    """The source file is missing (404), corrupt or not of the expected schema."""

    reason = "bad_source"


class QualityCheckError(PermanentError):
    reason = "quality_check_failed"


_TRANSIENT_HTTP = {408, 429, 500, 502, 503, 504}
_TRANSIENT_PG_CODES = {"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300"}


def classify(exc: BaseException) -> PipelineError:
    """Translate any exception into the pipeline's two families.

    Unknown exceptions are treated as transient: the event-age bound in the
    entry-point runner turns an endless retry into a dead letter eventually.
    """
    if isinstance(exc, PipelineError):
        return exc
    name = type(exc).__name__
    module = type(exc).__module__
    # Google API errors (storage, bigquery, pubsub) carry an HTTP code.
    code = getattr(exc, "code", None)
    if module.startswith(("google.api_core", "google.cloud")) and isinstance(code, int):
        if code in _TRANSIENT_HTTP:
            return TransientError(f"{name}: {exc}", reason="google_api_transient", status=code)
        return PermanentError(f"{name}: {exc}", reason="google_api_error", status=code)
    if module.startswith(("requests", "urllib3")) or isinstance(exc, (ConnectionError, TimeoutError)):
        return TransientError(f"{name}: {exc}", reason="network")
    if module.startswith("pg8000"):
        pg_code = None
        if exc.args and isinstance(exc.args[0], dict):
            pg_code = exc.args[0].get("C")
        if pg_code is None or pg_code in _TRANSIENT_PG_CODES or name == "InterfaceError":
            return TransientError(f"{name}: {exc}", reason="database_transient", sqlstate=pg_code)
        return PermanentError(f"{name}: {exc}", reason="database_error", sqlstate=pg_code)
    return TransientError(f"{name}: {exc}", reason="unexpected")
