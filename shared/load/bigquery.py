"""Replace one day of `{service}_trips` in BigQuery, atomically and idempotently.

Two strategies (setting BQ_REPLACE_STRATEGY):
- `partition_decorator` (Google Cloud): one load job from the object's gs:// URI
  into `table$YYYYMMDD` with WRITE_TRUNCATE. The partition is swapped
  atomically, load jobs are free and use no DML quota.
- `staging_transaction` (works on the emulator too, which rejects decorators):
  load the checked bytes of the event's generation into a uniquely named
  staging table, then one multi-statement transaction deletes the day and
  inserts the staging rows; the staging table is dropped always, and carries an
  expiration so that even a crashed instance leaves nothing behind for long.

Job ids are derived from (table, date, generation): in Google Cloud a duplicate
event finds its job already exists (409 Conflict) and waits for it instead of
running it twice. An existing job that failed is run again under a fresh id, so
a transient failure cannot wedge the id forever. The emulator does not enforce
job-id uniqueness, so both strategies are also idempotent by replace semantics.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import bigquery as bq

from shared.core import clients, logs
from shared.core.errors import PermanentError, PipelineError, TransientError, classify
from shared.core.schemas import columns
from shared.core.settings import Settings
from shared.load.partition import PartitionData, PartitionLoad

JOB_TIMEOUT_SECONDS = 480
STAGING_TTL = dt.timedelta(hours=6)
CLUSTERING = ["pu_location_id", "do_location_id"]
_TRANSIENT_REASONS = {
    "backendError",
    "internalError",
    "rateLimitExceeded",
    "jobBackendError",
    "jobInternalError",
    "quotaExceeded",
    "tableUnavailable",
    "resourceInUse",
}
_CONCURRENT = re.compile(r"concurrent update|serialize access|transaction .*aborted", re.I)
_ensured: set[str] = set()
_ensured_lock = threading.Lock()


def table_name(service: str) -> str:
    return f"{service}_trips"


def table_id(settings: Settings, service: str) -> str:
    return f"{settings.project}.{settings.bq_dataset}.{table_name(service)}"


def schema_fields(service: str) -> list[bq.SchemaField]:
    """Explicit schema with the TLC meaning of every column (from shared/core/schemas.py)."""
    return [bq.SchemaField(c.name, c.bq_type, mode="NULLABLE", description=c.description) for c in columns(service)]


def time_partitioning(settings: Settings) -> bq.TimePartitioning:
    days = settings.bq_partition_expiration_days
    return bq.TimePartitioning(
        type_=bq.TimePartitioningType.DAY, field="pickup_date", expiration_ms=days * 86_400_000 if days else None
    )


def table_definition(settings: Settings, service: str) -> bq.Table:
    table = bq.Table(table_id(settings, service), schema=schema_fields(service))
    table.time_partitioning = time_partitioning(settings)
    table.clustering_fields = CLUSTERING
    table.description = (
        f"NYC TLC {service} taxi trips, one row per trip, DAY-partitioned on pickup_date; "
        "each day is replaced whole from the lake's trips/ partition."
    )
    return table


def ensure_table(client: Any, settings: Settings, service: str) -> None:
    """Create the table if missing (once per process); align expiration and descriptions.

    Never the dataset: it is Terraform's (infra/terraform/bigquery.tf), and BigQuery checks
    `bigquery.datasets.create` on the PROJECT before it looks for an existing dataset, so even
    `create_dataset(exists_ok=True)` is a 403 for this account (dataEditor on the dataset only).
    A missing dataset surfaces as NotFound from create_table, which `translate` retries.
    """
    if table_id(settings, service) in _ensured:
        return
    wanted = table_definition(settings, service)
    with _ensured_lock:
        current = client.create_table(wanted, exists_ok=True)
        changed = []
        want_ms = wanted.time_partitioning.expiration_ms
        if current.time_partitioning is not None and current.time_partitioning.expiration_ms != want_ms:
            current.time_partitioning = wanted.time_partitioning
            changed.append("time_partitioning")
        described = {f.name: f.description for f in wanted.schema}
        if any(f.description != described.get(f.name, f.description) for f in current.schema):
            current.schema = [
                f
                if f.name not in described
                else bq.SchemaField(f.name, f.field_type, mode=f.mode, description=described[f.name])
                for f in current.schema
            ]
            changed.append("schema")
        if changed:
            client.update_table(current, changed)
            logs.info("bigquery table definition updated", table=table_id(settings, service), fields=changed)
        _ensured.add(table_id(settings, service))


def job_id(kind: str, table: str, day: dt.date, generation: int, suffix: str = "") -> str:
    """Deterministic, valid job id: `{kind}_{table}_{YYYYMMDD}_g{generation}[_{suffix}]`."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", table)
    if len(safe) > 200:  # job ids are limited to 1,024 characters; keep them readable
        safe = safe[:150] + "_" + hashlib.sha256(table.encode()).hexdigest()[:16]
    return "_".join(p for p in (kind, safe, day.strftime("%Y%m%d"), f"g{generation}", suffix) if p)


def labels(load: PartitionLoad) -> dict[str, str]:
    return {
        "service": load.service,
        "pickup_date": load.date.isoformat(),
        "generation": str(load.generation),
        "pipeline": "taxi-etl",
    }


def load_config(load: PartitionLoad, write_disposition: str) -> bq.LoadJobConfig:
    """A parquet load with the explicit schema into an existing table. WRITE_TRUNCATE for the
    partition_decorator strategy (replaces exactly the day's partition); WRITE_EMPTY for the
    pre-created staging table, which must still be empty."""
    return bq.LoadJobConfig(
        source_format=bq.SourceFormat.PARQUET,
        schema=schema_fields(load.service),
        write_disposition=write_disposition,
        create_disposition=bq.CreateDisposition.CREATE_NEVER,
        labels=labels(load),
    )


def replace_day_sql(target: str, staging: str, service: str, day: dt.date) -> str:
    """One multi-statement transaction: the day is either fully old or fully new."""
    names = ", ".join(f"`{c.name}`" for c in columns(service))
    return (
        "BEGIN TRANSACTION;\n"
        f"DELETE FROM `{target}` WHERE pickup_date = DATE '{day.isoformat()}';\n"
        f"INSERT INTO `{target}` ({names})\nSELECT {names} FROM `{staging}`;\n"
        "COMMIT TRANSACTION;"
    )


def staging_table_id(settings: Settings, load: PartitionLoad, suffix: str) -> str:
    name = f"_staging_{table_name(load.service)}_{load.date:%Y%m%d}_g{load.generation}_{suffix}"
    return f"{settings.project}.{settings.bq_dataset}.{name}"


def run_job(client: Any, create: Callable[[str], Any], job_id_: str) -> Any:
    """Create the job under its deterministic id; a 409 means it exists: wait for that one.

    Only a job that succeeded counts as done. If the existing job failed, the
    work is run again under a fresh id (the deterministic id is spent).
    """
    try:
        job = create(job_id_)
    except gexc.Conflict:
        existing = client.get_job(job_id_)
        try:
            existing.result(timeout=JOB_TIMEOUT_SECONDS)
            logs.info("bigquery job already existed; reusing its result", job_id=job_id_)
            return existing
        except gexc.GoogleAPICallError as exc:
            logs.warning("existing bigquery job had failed; running again", job_id=job_id_, error=str(exc)[:300])
            job = create(f"{job_id_}_r{uuid.uuid4().hex[:8]}")
    job.result(timeout=JOB_TIMEOUT_SECONDS)
    return job


def replace_by_decorator(client: Any, settings: Settings, load: PartitionLoad, data: PartitionData) -> dict[str, Any]:
    target = f"{table_id(settings, load.service)}${load.date:%Y%m%d}"
    config = load_config(load, bq.WriteDisposition.WRITE_TRUNCATE)
    job = run_job(
        client,
        lambda jid: client.load_table_from_uri(load.uri, target, job_id=jid, job_config=config),
        job_id("load", table_id(settings, load.service), load.date, load.generation),
    )
    return {"job_id": job.job_id, "rows_loaded": job.output_rows}


def replace_by_staging(client: Any, settings: Settings, load: PartitionLoad, data: PartitionData) -> dict[str, Any]:
    target = table_id(settings, load.service)
    suffix = uuid.uuid4().hex[:8]
    staging = staging_table_id(settings, load, suffix)
    try:
        table = bq.Table(staging, schema=schema_fields(load.service))
        table.expires = dt.datetime.now(dt.UTC) + STAGING_TTL
        client.create_table(table)
        config = load_config(load, bq.WriteDisposition.WRITE_EMPTY)
        # size=None: a resumable upload (the emulator rejects the multipart upload of small files).
        run_job(
            client,
            lambda jid: client.load_table_from_file(
                io.BytesIO(data.parquet), staging, job_id=jid, job_config=config, size=None
            ),
            job_id("stage", target, load.date, load.generation, suffix),
        )
        sql = replace_day_sql(target, staging, load.service, load.date)
        job = run_job(
            client,
            lambda jid: client.query(
                sql, job_id=jid, job_retry=None, job_config=bq.QueryJobConfig(labels=labels(load))
            ),
            job_id("replace", target, load.date, load.generation),
        )
    finally:
        try:
            client.delete_table(staging, not_found_ok=True)
        except Exception as exc:  # the table expires anyway; never mask the real outcome
            logs.warning("could not drop the staging table; it will expire", table=staging, error=str(exc)[:300])
    return {"job_id": job.job_id, "staging_table": staging}


STRATEGIES = {"partition_decorator": replace_by_decorator, "staging_transaction": replace_by_staging}


def translate(exc: BaseException) -> PipelineError:
    """BigQuery's error reasons decide: backend/rate/quota/conflicts retry, the rest is permanent."""
    if isinstance(exc, PipelineError):
        return exc
    if isinstance(exc, gexc.GoogleAPICallError):
        reasons = {e.get("reason") for e in (exc.errors or []) if isinstance(e, dict)}
        if reasons & _TRANSIENT_REASONS or _CONCURRENT.search(str(exc)):
            return TransientError(
                f"{type(exc).__name__}: {exc}",
                reason="bigquery_transient",
                status=exc.code,
                bq_reasons=sorted(r for r in reasons if r),
            )
        if isinstance(exc, gexc.NotFound):  # table/dataset dropped under us: recreate on retry
            _ensured.clear()
            return TransientError(f"{type(exc).__name__}: {exc}", reason="bigquery_not_found", status=404)
        error = classify(exc)
        if isinstance(error, PermanentError):
            error.details["bq_reasons"] = sorted(r for r in reasons if r)
        return error
    return classify(exc)


def load_partition(
    load: PartitionLoad, data: PartitionData, settings: Settings, timings: dict[str, float]
) -> dict[str, Any]:
    """Replace the day with the event's generation using the configured strategy."""
    client = clients.bigquery()
    try:
        with logs.timed(timings, "ensure_table_seconds"):
            ensure_table(client, settings, load.service)
        with logs.timed(timings, "load_seconds"):
            result = STRATEGIES[settings.bq_replace_strategy](client, settings, load, data)
    except Exception as exc:
        error = translate(exc)
        if error is exc:
            raise
        raise error from exc
    return {
        "message": "day replaced in BigQuery",
        "table": table_id(settings, load.service),
        "strategy": settings.bq_replace_strategy,
        **result,
    }
