"""Typed, frozen settings read once from the environment and validated at start.

Every knob of the pipeline lives here, so that Terraform, the local stack and the
tests agree on one list of variable names. Each field declares the environment
variable it comes from and the functions that read it; `env_vars_for(function)`
is what the Terraform structural test checks against each function resource.
"""

from __future__ import annotations

import dataclasses
import os
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from shared.core.eras import TLC_PARQUET_TEMPLATE
from shared.core.errors import ConfigError

INGEST = "ingest"
BACKFILL = "backfill"
LOAD_BIGQUERY = "load_bigquery"
LOAD_POSTGRES = "load_postgres"
STATUS = "status"
ALL_FUNCTIONS = (INGEST, BACKFILL, LOAD_BIGQUERY, LOAD_POSTGRES, STATUS)

# TLC's own files: the only source that serves every month since each service began and each new
# month the day TLC publishes it (DataTalksClub's CSV.gz mirror, eras.MIRROR_TEMPLATE, stops at 2021-07).
DEFAULT_SOURCE_URL_TEMPLATE = TLC_PARQUET_TEMPLATE


def _str(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = int(value)
        if not lo <= number <= hi:
            raise ValueError(f"must be between {lo} and {hi}")
        return number

    return parse


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def _url_template(value: str) -> str:
    """The template is an operator setting, never message input (no SSRF)."""
    fields = {name for _, name, _, _ in string.Formatter().parse(value) if name}
    unknown = fields - {"service", "year", "month"}
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}; allowed: service, year, month")
    if not value.startswith(("http://", "https://")):
        raise ValueError("must be an http(s) URL")
    try:
        value.format(service="yellow", year=2021, month=1)
    except (ValueError, IndexError, KeyError) as exc:
        raise ValueError(f"does not format: {exc}") from exc
    return value


def _setting(env: str, parse: Callable[[str], Any], default: Any, *functions: str) -> Any:
    return field(default=default, metadata={"env": env, "parse": parse, "functions": functions or ALL_FUNCTIONS})


@dataclass(frozen=True)
class Settings:
    """All settings; `None` default means the variable is required where used."""

    project: str = _setting("GCP_PROJECT", _str, None)
    lake_bucket: str = _setting("LAKE_BUCKET", _str, None, INGEST, LOAD_BIGQUERY, LOAD_POSTGRES, STATUS, BACKFILL)
    dead_letter_topic: str = _setting("DEAD_LETTER_TOPIC", _str, None)
    log_level: str = _setting("LOG_LEVEL", _choice("DEBUG", "INFO", "WARNING", "ERROR"), "INFO")
    max_event_age_seconds: int = _setting("MAX_EVENT_AGE_SECONDS", _int_range(60, 7 * 86400), 6 * 3600)
    # The push subscriptions' dead-letter policy: on this attempt a transient failure is
    # dead-lettered by the function itself (structured, with its reason) rather than raised into
    # Pub/Sub's raw forwarding. 0: no such policy (Eventarc triggers; the event age bounds them).
    max_delivery_attempts: int = _setting("MAX_DELIVERY_ATTEMPTS", _int_range(0, 100), 5)

    # ingest
    source_url_template: str = _setting(
        "SOURCE_URL_TEMPLATE", _url_template, DEFAULT_SOURCE_URL_TEMPLATE, INGEST, STATUS, BACKFILL
    )
    ingest_lag_days: int = _setting("INGEST_LAG_DAYS", _int_range(0, 3660), 1, INGEST)
    # A 404 for a month that ended fewer than this many days ago is `awaiting_source` (not published
    # yet: TLC publishes about two months late), not an error (shared/ingest/publication.py).
    source_grace_days: int = _setting("SOURCE_GRACE_DAYS", _int_range(0, 3660), 92, INGEST)
    keep_empty_passenger_count: bool = _setting("KEEP_EMPTY_PASSENGER_COUNT", _bool, False, INGEST)
    # What a column TLC adds does (shared/ingest/schema_contract.py, like dlt's schema contracts):
    # evolve = a new nullable column everywhere; discard_value / discard_row = dropped, recorded;
    # freeze = the month fails naming it.
    schema_contract: str = _setting(
        "SCHEMA_CONTRACT", _choice("evolve", "discard_value", "discard_row", "freeze"), "evolve", INGEST
    )
    download_timeout_seconds: int = _setting("DOWNLOAD_TIMEOUT_SECONDS", _int_range(1, 3600), 60, INGEST)
    download_max_attempts: int = _setting("DOWNLOAD_MAX_ATTEMPTS", _int_range(1, 10), 4, INGEST)
    # How long a date waits for another instance's split of its month before it is retried:
    # below the function's timeout (540 s), leaving time to publish the date itself.
    split_wait_seconds: int = _setting("SPLIT_WAIT_SECONDS", _int_range(0, 3600), 420, INGEST)

    # BigQuery
    bq_dataset: str = _setting("BQ_DATASET", _str, "nyc_taxi", LOAD_BIGQUERY, STATUS, BACKFILL)
    bq_location: str = _setting("BQ_LOCATION", _str, "US", LOAD_BIGQUERY, STATUS, BACKFILL)
    bq_partition_expiration_days: int = _setting(
        "BQ_PARTITION_EXPIRATION_DAYS", _int_range(0, 100000), 0, LOAD_BIGQUERY
    )

    # PostgreSQL / Cloud SQL
    pg_schema: str = _setting("PG_SCHEMA", _str, "ny_taxi", LOAD_POSTGRES, STATUS, BACKFILL)
    pg_database: str = _setting("PG_DATABASE", _str, "ny_taxi", LOAD_POSTGRES, STATUS, BACKFILL)
    pg_user: str = _setting("PG_USER", _str, "postgres", LOAD_POSTGRES, STATUS, BACKFILL)
    pg_password: str = _setting("PG_PASSWORD", str, "", LOAD_POSTGRES, STATUS, BACKFILL)
    pg_host: str = _setting("PG_HOST", _str, "127.0.0.1", LOAD_POSTGRES, STATUS, BACKFILL)
    pg_port: int = _setting("PG_PORT", _int_range(1, 65535), 5432, LOAD_POSTGRES, STATUS, BACKFILL)
    cloud_sql_instance: str = _setting("CLOUD_SQL_INSTANCE", str, "", LOAD_POSTGRES, STATUS, BACKFILL)
    pg_iam_auth: bool = _setting("PG_IAM_AUTH", _bool, False, LOAD_POSTGRES, STATUS, BACKFILL)

    # backfill (with only_missing it reads the status, hence the lake, BigQuery and Postgres
    # settings above; status bounds its date range with BACKFILL_MAX_DATES)
    ingest_topic: str = _setting("INGEST_TOPIC", _str, None, BACKFILL)
    backfill_max_dates: int = _setting("BACKFILL_MAX_DATES", _int_range(1, 100000), 3660, BACKFILL, STATUS)

    def __repr__(self) -> str:  # never print the password into a log
        shown = {
            f.name: ("***" if f.name == "pg_password" and getattr(self, f.name) else getattr(self, f.name))
            for f in dataclasses.fields(self)
        }
        return f"Settings({shown})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, function: str | None = None) -> Settings:
        """Parse and validate. A variable without default is required where it is used: for
        `function`, or, with no function named, only if every function uses it (shared code such
        as the client factories must not demand another function's settings)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name, parse = f.metadata["env"], f.metadata["parse"]
            used = (
                function in f.metadata["functions"]
                if function is not None
                else set(f.metadata["functions"]) >= set(ALL_FUNCTIONS)
            )
            raw = env.get(name)
            if name == "GCP_PROJECT" and raw is None:
                raw = env.get("GOOGLE_CLOUD_PROJECT")
            if raw is None:
                if f.default is None and used:
                    raise ConfigError(f"missing setting {name}", field=name, value=None)
                values[f.name] = f.default
                continue
            try:
                values[f.name] = parse(raw)
            except ValueError as exc:
                shown = "***" if name == "PG_PASSWORD" else raw
                raise ConfigError(f"invalid setting {name}: {exc}", field=name, value=shown) from exc
        return cls(**values)


def env_vars_for(function: str) -> list[str]:
    """Environment variables `function` reads (for Terraform and docs)."""
    return [f.metadata["env"] for f in dataclasses.fields(Settings) if function in f.metadata["functions"]]


@cache
def get_settings(function: str | None = None) -> Settings:
    """Settings of the running process, parsed once per function and reused."""
    return Settings.from_env(function=function)
