"""Replace one day of `{service}_trips` in BigQuery, atomically and idempotently.

One path, the same in Google Cloud and in the local stack: one load job from the object's gs://
URI into `table$YYYYMMDD` with WRITE_TRUNCATE. The partition is swapped atomically, the rest of
the table is untouched, load jobs are free and use no DML quota, and a file holding rows of
another day fails the job and changes nothing. The BigQuery emulator has no partition
decorators: the local stack bridges them (local/stack/bq_bridge.py), never a second strategy here.

Job ids are derived from (table, date, generation): a duplicate event finds its job already
exists (409 Conflict) and waits for it instead of running it twice. An existing job that failed
is run again under a fresh id, so a transient failure cannot wedge the id forever.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import bigquery as bq

from shared.core import clients, logs
from shared.core.errors import PermanentError, PipelineError, TransientError, classify
from shared.core.evolved_columns import column_of, extra_fields
from shared.core.schemas import columns
from shared.core.settings import Settings
from shared.load.partition import PartitionData, PartitionLoad

JOB_TIMEOUT_SECONDS = 480
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
_BQ_TYPES = {"FLOAT": "FLOAT64", "FLOAT64": "FLOAT64", "STRING": "STRING", "DATETIME": "DATETIME", "DATE": "DATE"}
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
        for _ in range(5):
            changed = _align(current, wanted)
            if not changed:
                break
            try:  # the update carries the table's etag (If-Match): a concurrent change is a 412
                client.update_table(current, changed)
            except gexc.PreconditionFailed:  # another loader aligned or evolved it since: read it again
                current = client.get_table(wanted.reference)
                continue
            logs.info("bigquery table definition updated", table=table_id(settings, service), fields=changed)
            break
        else:
            raise TransientError(
                f"the definition of {table_id(settings, service)} kept changing", reason="bigquery_schema_busy"
            )
        _ensured.add(table_id(settings, service))


def _align(current: bq.Table, wanted: bq.Table) -> list[str]:
    """Bring `current` (the table as read) to `wanted` in place: expiration, declared columns a table
    of an older release lacks (NULLABLE, at the end: yellow's 2009-2010 coordinates), descriptions.
    Columns added by schema evolution are kept. Returns the fields to update (none: nothing to do)."""
    changed = []
    want_ms = wanted.time_partitioning.expiration_ms
    if current.time_partitioning is not None and current.time_partitioning.expiration_ms != want_ms:
        current.time_partitioning = wanted.time_partitioning
        changed.append("time_partitioning")
    have = {f.name for f in current.schema}
    missing = [f for f in wanted.schema if f.name not in have]
    if missing:
        current.schema = [*current.schema, *(bq.SchemaField(f.name, f.field_type, mode="NULLABLE") for f in missing)]
        changed.append("schema")
    described = {f.name: f.description for f in wanted.schema}
    if any(f.description != described.get(f.name, f.description) for f in current.schema):
        current.schema = [
            f
            if f.name not in described
            else bq.SchemaField(f.name, f.field_type, mode=f.mode, description=described[f.name])
            for f in current.schema
        ]
        if "schema" not in changed:
            changed.append("schema")
    return changed


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


def load_config(load: PartitionLoad, schema: list[bq.SchemaField] | None = None) -> bq.LoadJobConfig:
    """A parquet load with the explicit schema into the existing table's day partition:
    WRITE_TRUNCATE replaces exactly that partition. `schema`: the table's, when schema evolution
    added columns to it (add_columns); ALLOW_FIELD_ADDITION then lets the job itself add a column
    that another loader's patch has not made visible yet, rather than fail."""
    config = bq.LoadJobConfig(
        source_format=bq.SourceFormat.PARQUET,
        schema=schema or schema_fields(load.service),
        write_disposition=bq.WriteDisposition.WRITE_TRUNCATE,
        create_disposition=bq.CreateDisposition.CREATE_NEVER,
        labels=labels(load),
    )
    if schema is not None:
        config.schema_update_options = [bq.SchemaUpdateOption.ALLOW_FIELD_ADDITION]
    return config


def add_columns(client: Any, settings: Settings, service: str, added: list[Any]) -> list[bq.SchemaField] | None:
    """Schema evolution: the partition's added columns (shared/core/evolved_columns.py) made
    NULLABLE columns of the table, each with a description saying which month brought it; returns
    the table's schema, or None when the table has only its declared columns and nothing is added.
    Idempotent (a column already there is left alone) and safe against a concurrent loader: the
    patch carries the table's etag, so of two loaders adding at once one gets 412 and reads again.
    A column already there with another type is permanent (`column_type_changed`), naming it."""
    tid = table_id(settings, service)
    for _ in range(5):
        table = client.get_table(tid)
        have = {f.name: f for f in table.schema}
        wanted = [column_of(f, service) for f in added]
        for column in wanted:
            if column.name in have and _BQ_TYPES.get(have[column.name].field_type, "") != column.bq_type:
                raise PermanentError(
                    f"column {column.name} of {tid} is {have[column.name].field_type}, "
                    f"the partition's is {column.bq_type}",
                    reason="column_type_changed",
                    field=column.name,
                    value=column.bq_type,
                )
        new = [c for c in wanted if c.name not in have]
        if not new:
            # the table's own order when it differs from the declared one (columns added later)
            return list(table.schema) if [f.name for f in table.schema] != [c.name for c in columns(service)] else None
        table.schema = [
            *table.schema,
            *(bq.SchemaField(c.name, c.bq_type, mode="NULLABLE", description=c.description) for c in new),
        ]
        try:
            updated = client.update_table(table, ["schema"])
        except gexc.PreconditionFailed:
            continue  # another loader changed the table since we read it: read it again
        logs.info("bigquery columns added by schema evolution", table=tid, columns=[c.name for c in new])
        return list(updated.schema)
    raise TransientError(f"the schema of {tid} kept changing while adding columns", reason="bigquery_schema_busy")


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


def replace_by_decorator(
    client: Any,
    settings: Settings,
    load: PartitionLoad,
    data: PartitionData,
    schema: list[bq.SchemaField] | None = None,
) -> dict[str, Any]:
    target = f"{table_id(settings, load.service)}${load.date:%Y%m%d}"
    config = load_config(load, schema)
    job = run_job(
        client,
        lambda jid: client.load_table_from_uri(load.uri, target, job_id=jid, job_config=config),
        job_id("load", table_id(settings, load.service), load.date, load.generation),
    )
    return {"job_id": job.job_id, "rows_loaded": job.output_rows}


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
    """Replace the day with the event's generation: one load job into its partition decorator."""
    client = clients.bigquery()
    try:
        with logs.timed(timings, "ensure_table_seconds"):
            ensure_table(client, settings, load.service)
            # Every load reads the table's schema: a day without an added column still loads into
            # a table that has it (the column is null for that day).
            schema = add_columns(client, settings, load.service, extra_fields(data.table.schema, load.service))
        with logs.timed(timings, "load_seconds"):
            result = replace_by_decorator(client, settings, load, data, schema)
    except Exception as exc:
        error = translate(exc)
        if error is exc:
            raise
        raise error from exc
    return {
        "message": "day replaced in BigQuery",
        "table": table_id(settings, load.service),
        **result,
    }
