"""A load job into a partition decorator (`table$YYYYMMDD`), carried out on the BigQuery emulator.

The emulator has no partition decorators; Google Cloud's load job into one is the day replace that
`shared/load/bigquery.py` runs. local/stack/bq_bridge.py hands such jobs here, and they get
Google's semantics (https://cloud.google.com/bigquery/docs/managing-partitioned-table-data):
- the table must exist (the loader uses CREATE_NEVER: `notFound` otherwise) and be partitioned by
  day on a column; the decorator names one of its partitions;
- the load's schema must match the table's ("Provided Schema does not match Table"), except that
  with ALLOW_FIELD_ADDITION it may add NULLABLE fields at the end, which are added to the table;
  a NULLABLE column of the schema that a parquet file lacks loads as NULL (parquet is matched by
  name; the bridge reads the file's footer from fake-gcs-server to know its columns);
- every loaded row must belong to that partition, else the job fails and nothing changes ("Some
  rows belong to different partitions rather than destination partition YYYYMMDD");
- WRITE_TRUNCATE replaces exactly that partition, atomically; WRITE_APPEND adds to it; WRITE_EMPTY
  loads only into an empty partition; the rest of the table is never touched.
How: the file is loaded, with the job's own load configuration, into a fresh `_staging_bridge_*`
table; the partition check is one query; one transaction deletes the partition (WRITE_TRUNCATE,
when it holds rows) and inserts the rows; the staging table is dropped always (one a dead emulator
left: by the next load, bq_leftovers.py). Loads into one table are serialized here, as BigQuery
serializes them, so the emulator never aborts one transaction for another.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
import time
import urllib.request
import uuid
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq

from local.stack import bq_leftovers

DECORATED = re.compile(r"^(?P<table>[A-Za-z0-9_]+)\$(?P<partition>.+)$")
_TYPES = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD"}
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


class JobFailed(Exception):
    """The job ends DONE with this errorResult (Google's reason and message)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def decorated(load: dict[str, Any]) -> bool:
    return bool(DECORATED.match(str((load.get("destinationTable") or {}).get("tableId", ""))))


def table_path(ref: dict[str, Any]) -> str:
    return f"{ref.get('projectId')}.{ref.get('datasetId')}.{ref.get('tableId')}"


def error_body(code: int, reason: str, message: str) -> dict[str, Any]:
    """Google's JSON error body, which the client libraries turn into their exceptions."""
    return {"error": {"code": code, "message": message, "errors": [{"reason": reason, "message": message}]}}


def _lock(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def _now_ms() -> str:
    return str(int(time.time() * 1000))


def running(project: str, body: dict[str, Any]) -> dict[str, Any]:
    """The job resource while the bridge carries it out (what a concurrent jobs.get sees)."""
    reference = {"projectId": project, **(body.get("jobReference") or {})}
    return {
        "kind": "bigquery#job",
        "id": f"{reference['projectId']}:{reference.get('location') or 'US'}.{reference.get('jobId')}",
        "jobReference": reference,
        "configuration": {**body["configuration"], "jobType": "LOAD"},
        "status": {"state": "RUNNING"},
        "statistics": {"creationTime": _now_ms()},
    }


def run_load(upstream: Any, project: str, body: dict[str, Any]) -> dict[str, Any]:
    """The finished job resource, DONE, with an errorResult if it failed. OSError (the emulator
    unreachable) propagates: the bridge answers 503 and the client retries."""
    reference = {"projectId": project, "jobId": f"bridge_{uuid.uuid4().hex}", **(body.get("jobReference") or {})}
    configuration = {**body["configuration"], "jobType": "LOAD"}
    created = _now_ms()
    status: dict[str, Any] = {"state": "DONE"}
    statistics: dict[str, Any] = {"creationTime": created, "startTime": created}
    try:
        rows = _replace(upstream, reference, configuration["load"])
        statistics["load"] = {
            "inputFiles": str(len(configuration["load"].get("sourceUris") or [])),
            "outputRows": str(rows),
            "badRecords": "0",
        }
    except JobFailed as exc:
        status["errorResult"] = {"reason": exc.reason, "message": exc.message}
        status["errors"] = [status["errorResult"]]
    statistics["endTime"] = _now_ms()
    location = reference.get("location") or "US"
    return {
        "kind": "bigquery#job",
        "id": f"{reference['projectId']}:{location}.{reference['jobId']}",
        "jobReference": reference,
        "configuration": configuration,
        "status": status,
        "statistics": statistics,
        "user_email": "local-bq-bridge",
    }


def _replace(upstream: Any, reference: dict[str, Any], load: dict[str, Any]) -> int:
    destination = load["destinationTable"]
    match = DECORATED.match(destination["tableId"])
    assert match is not None
    base, stamp = match.group("table"), match.group("partition")
    try:
        day = dt.datetime.strptime(stamp, "%Y%m%d").date()
    except ValueError:
        raise JobFailed("invalid", f"the local bridge implements day partition decorators only, not ${stamp}") from None
    project = destination.get("projectId") or reference["projectId"]
    dataset = destination["datasetId"]
    target = f"{project}.{dataset}.{base}"
    table = _get_table(upstream, project, dataset, base)
    partitioning = table.get("timePartitioning") or {}
    field = partitioning.get("field")
    if partitioning.get("type") != "DAY" or not field:
        raise JobFailed("invalid", f"Table {target} is not partitioned by day on a column: no partition ${stamp}")
    table = _add_fields(upstream, load, table, project, dataset, base)
    _check_schema(load.get("schema"), table["schema"], target)
    disposition = load.get("writeDisposition") or "WRITE_APPEND"
    if disposition not in ("WRITE_TRUNCATE", "WRITE_APPEND", "WRITE_EMPTY"):
        raise JobFailed("invalid", f"Invalid writeDisposition {disposition}")
    kind = {f["name"]: f.get("type", "").upper() for f in table["schema"]["fields"]}[field]
    in_day = f"`{field}` = DATE '{day}'" if kind == "DATE" else f"DATE(`{field}`) = DATE '{day}'"
    in_file = _file_columns(load.get("sourceUris") or [])
    given = {f["name"]: f for f in (load.get("schema") or table["schema"])["fields"]}
    fields = list(given.values()) if in_file is None else [given[n] for n in in_file if n in given]
    columns = ", ".join(f"`{f['name']}`" for f in fields)
    staging = f"_staging_bridge_{base}_{stamp}_{uuid.uuid4().hex[:8]}"
    staged = f"{project}.{dataset}.{staging}"
    with _lock(target):
        bq_leftovers.drop_leftover_staging(upstream, project, dataset, base)
        try:
            staged_load = {
                **load,
                "destinationTable": {"projectId": project, "datasetId": dataset, "tableId": staging},
                "schema": {"fields": fields},
                "writeDisposition": "WRITE_EMPTY",
                "createDisposition": "CREATE_IF_NEEDED",
            }
            _run(upstream, reference, {"load": staged_load})
            outside, loaded = _counts(
                upstream,
                reference,
                f"SELECT SUM(CASE WHEN NOT ({in_day}) OR `{field}` IS NULL THEN 1 ELSE 0 END), COUNT(*) "
                f"FROM `{staged}`",
            )
            if outside:
                raise JobFailed(
                    "invalid",
                    f"Some rows belong to different partitions rather than destination partition {stamp} "
                    f"({outside} rows of {target})",
                )
            held = 0
            if disposition in ("WRITE_EMPTY", "WRITE_TRUNCATE"):
                held = _counts(upstream, reference, f"SELECT COUNT(*) FROM `{target}` WHERE {in_day}")[0]
            if disposition == "WRITE_EMPTY" and held:
                raise JobFailed("duplicate", f"Already Exists: Table {project}:{dataset}.{base}${stamp}")
            # Every write makes the emulator copy the whole table (README, Performance), so a partition
            # that holds nothing is not deleted first: one write instead of two, the same outcome.
            insert = f"INSERT INTO `{target}` ({columns})\nSELECT {columns} FROM `{staged}`"
            query = (
                f"BEGIN TRANSACTION;\nDELETE FROM `{target}` WHERE {in_day};\n{insert};\nCOMMIT TRANSACTION;"
                if disposition == "WRITE_TRUNCATE" and held
                else insert
            )
            _run(upstream, reference, {"query": {"query": query, "useLegacySql": False}})
            return loaded
        finally:
            try:
                upstream.request("DELETE", f"/bigquery/v2/projects/{project}/datasets/{dataset}/tables/{staging}")
            except OSError:
                pass  # the emulator went away: the next load of the table drops it


def _get_table(upstream: Any, project: str, dataset: str, table: str) -> dict[str, Any]:
    status, body = upstream.json("GET", f"/bigquery/v2/projects/{project}/datasets/{dataset}/tables/{table}")
    if status == 404:
        raise JobFailed("notFound", f"Not found: Table {project}:{dataset}.{table}")
    if status >= 300:
        raise _upstream_error(status, body)
    return body


def _normal(schema: dict[str, Any]) -> list[tuple[str, str]]:
    fields = schema.get("fields") or []
    return [(f["name"].lower(), _TYPES.get(f.get("type", "").upper(), f.get("type", "").upper())) for f in fields]


def _add_fields(
    upstream: Any, load: dict[str, Any], table: dict[str, Any], project: str, dataset: str, base: str
) -> dict[str, Any]:
    """ALLOW_FIELD_ADDITION: NULLABLE fields the load's schema has beyond the table's are added
    to the table first (Google's side effect of such a load into a partition)."""
    given = (load.get("schema") or {}).get("fields") or []
    have = table["schema"].get("fields") or []
    if "ALLOW_FIELD_ADDITION" not in (load.get("schemaUpdateOptions") or []) or len(given) <= len(have):
        return table
    if _normal({"fields": given[: len(have)]}) != _normal(table["schema"]):
        return table  # not an addition: _check_schema refuses it
    if any((f.get("mode") or "NULLABLE") != "NULLABLE" for f in given[len(have) :]):
        raise JobFailed("invalid", "Cannot add required fields to an existing schema.")
    path = f"/bigquery/v2/projects/{project}/datasets/{dataset}/tables/{base}"
    status, body = upstream.json("PATCH", path, {"schema": {"fields": [*have, *given[len(have) :]]}})
    if status >= 300:
        raise _upstream_error(status, body)
    return _get_table(upstream, project, dataset, base)


def _file_columns(uris: list[str]) -> list[str] | None:
    """The parquet files' columns in order (fake-gcs-server), or None; Google reads by name, the emulator by place."""
    host = os.environ.get("STORAGE_EMULATOR_HOST", "").rstrip("/")
    if not host or not uris or not all(u.startswith("gs://") for u in uris):
        return None
    names: list[str] = []
    for uri in uris:
        bucket, _, name = uri[len("gs://") :].partition("/")
        url = f"{host}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}?alt=media"
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                names += [n for n in pq.read_schema(pa.BufferReader(response.read())).names if n not in names]
        except (OSError, pa.ArrowException):
            return None  # the staged load reports what is wrong with the file
    return names


def _check_schema(given: dict[str, Any] | None, table: dict[str, Any], target: str) -> None:
    if given and _normal(given) != _normal(table):
        raise JobFailed("invalid", f"Provided Schema does not match Table {target}.")


def _upstream_error(status: int, body: Any) -> Exception:
    error = (body or {}).get("error") or {}
    reason = ((error.get("errors") or [{}])[0].get("reason")) or ("backendError" if status >= 500 else "invalid")
    message = str(error.get("message") or body)[:1000]
    if status >= 500:  # the emulator failing is not the job's fault: surface it as Google's 503
        raise OSError(f"BigQuery emulator {status}: {message}")
    return JobFailed(reason, message)


def _run(upstream: Any, reference: dict[str, Any], configuration: dict[str, Any], timeout: float = 480) -> None:
    """One upstream job, waited for; its failure fails the bridged job with the same reason."""
    project, location = reference["projectId"], reference.get("location") or "US"
    job_id = f"bridge_{uuid.uuid4().hex}"
    body = {
        "jobReference": {"projectId": project, "jobId": job_id, "location": location},
        "configuration": configuration,
    }
    status, job = upstream.json("POST", f"/bigquery/v2/projects/{project}/jobs", body)
    deadline = time.monotonic() + timeout
    while True:
        if status >= 300:
            raise _upstream_error(status, job)
        state = job.get("status") or {}
        if state.get("state") == "DONE":
            if state.get("errorResult"):
                raise JobFailed(
                    state["errorResult"].get("reason") or "invalid", state["errorResult"].get("message", "")
                )
            return
        if time.monotonic() > deadline:
            raise JobFailed("timeout", f"upstream job {job_id} did not finish in {timeout:.0f}s")
        time.sleep(0.1)
        status, job = upstream.json("GET", f"/bigquery/v2/projects/{project}/jobs/{job_id}?location={location}")


def run_query(upstream: Any, reference: dict[str, Any], sql: str) -> None:
    """One statement run upstream as a query job, waited for (e.g. DDL)."""
    _run(upstream, reference, {"query": {"query": sql, "useLegacySql": False}})


def _counts(upstream: Any, reference: dict[str, Any], sql: str) -> list[int]:
    """The first row of a query of counts, as ints."""
    project = reference["projectId"]
    payload = {"query": sql, "useLegacySql": False, "location": reference.get("location") or "US", "timeoutMs": 120000}
    status, body = upstream.json("POST", f"/bigquery/v2/projects/{project}/queries", payload)
    if status >= 300:
        raise _upstream_error(status, body)
    if not body.get("jobComplete", True):
        raise JobFailed("timeout", f"query did not complete: {sql}")
    return [int(float(cell["v"] or 0)) for cell in body["rows"][0]["f"]]  # SUM of no rows is NULL
