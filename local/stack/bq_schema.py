"""A table's schema update (tables.patch / tables.update) given Google's semantics on the emulator.

The loaders add a column a TLC file brought (schema evolution, shared/load/bigquery.py
`add_columns`) with one tables.patch carrying the table's etag. The emulator falls short of
Google three ways, each measured against it (bqemulator, DuckDB):
- the patch updates the table's metadata only: the stored table never gets the column, and the
  next load fails with "Table yellow_trips does not have a column with name ...". Here each added
  field is also added to the stored table (`ALTER TABLE ... ADD COLUMN IF NOT EXISTS`, a statement
  the emulator runs);
- a stale `If-Match` etag is accepted: Google answers 412, which is how two loaders adding
  columns at once learn to read the table again. Here the etag is compared first;
- a schema that drops a field is accepted: Google refuses it ("Provided Schema does not match
  Table ... Field x is missing in new schema"). Here it is refused with Google's 400.
Requests to one table are serialized here, so the etag comparison and the write are one step.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from local.stack import bq_partition

TABLE = re.compile(
    r"^/bigquery/v2/projects/(?P<project>[^/]+)/datasets/(?P<dataset>[^/]+)/tables/(?P<table>[A-Za-z0-9_]+)(?:\?.*)?$"
)
_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def _lock(key: str) -> threading.Lock:
    with _guard:
        return _locks.setdefault(key, threading.Lock())


def update_table(
    upstream: Any, method: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, Any]] | None:
    """The answer to a PATCH/PUT of a table, or None when the request is forwarded unchanged."""
    match = TABLE.match(path)
    if method not in ("PATCH", "PUT") or match is None or not body:
        return None
    wanted = (json.loads(body).get("schema") or {}).get("fields")
    if_match = next((v for k, v in headers.items() if k.lower() == "if-match"), None)
    if wanted is None and if_match is None:
        return None
    project, dataset, table = match.group("project"), match.group("dataset"), match.group("table")
    with _lock(f"{project}.{dataset}.{table}"):
        status, current = upstream.json("GET", f"/bigquery/v2/projects/{project}/datasets/{dataset}/tables/{table}")
        if status >= 300:
            return status, current
        if if_match is not None and if_match != current.get("etag"):
            return 412, bq_partition.error_body(412, "conditionNotMet", "Precondition check failed.")
        have = [f["name"] for f in (current.get("schema") or {}).get("fields") or []]
        names = [f["name"] for f in wanted or []]
        if wanted is not None and [n for n in have if n not in names]:
            missing = [n for n in have if n not in names][0]
            message = (
                f"Provided Schema does not match Table {project}:{dataset}.{table}. "
                f"Field {missing} is missing in new schema"
            )
            return 400, bq_partition.error_body(400, "invalid", message)
        status, answer = upstream.json(method, path, json.loads(body))
        if status >= 300:
            return status, answer
        for field in wanted or []:
            if field["name"] not in have:
                alter = f"ALTER TABLE `{dataset}.{table}` ADD COLUMN IF NOT EXISTS `{field['name']}` {field['type']}"
                bq_partition.run_query(upstream, {"projectId": project}, alter)
        return status, answer
