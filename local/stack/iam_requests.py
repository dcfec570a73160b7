"""Which API method an HTTP request to Cloud Storage or BigQuery is, and which permissions it needs where.

A method's permission list (iam_data/api_method_permissions.json) is the union of what it MAY check,
so this module decides per call, following Google's method pages: `storage.objects.insert` needs
`storage.objects.delete` only when it replaces an object; `bigquery.datasets.insert` checks
`bigquery.datasets.create` on the PROJECT (whatever exists_ok does client-side); `bigquery.jobs.insert`
checks `bigquery.jobs.create` on the project and then what the job touches: a load job's destination
table (`tables.updateData`) and its gs:// sources (`storage.objects.get`, as the caller), a query's
tables (`tables.getData` read, `tables.updateData` by DML, `tables.create`/`delete` by DDL).
Jobs are the caller's own, so reading them back (`jobs.get`, `getQueryResults`) needs what created them.

A request this module does not recognise becomes an `unmapped` call with no permission that could
allow it: enforcement fails closed, so a new kind of call shows up instead of passing unchecked.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclasses.dataclass(frozen=True)
class Call:
    """One API call: its method (as Google's IAM docs name it) and the (permission, resource) checks."""

    method: str
    resource: str
    checks: tuple[tuple[str, str], ...]
    tolerated: str | None = None  # a denial Google issues too and the client library absorbs by design


Exists = Callable[[str, str], bool]  # (bucket, object) -> does it exist now


def _object(bucket: str, name: str) -> str:
    return f"projects/_/buckets/{bucket}/objects/{name}"


def _json_part(body: bytes | None) -> dict[str, Any]:
    """The JSON of a request body, or of the first part of a multipart upload."""
    if not body:
        return {}
    text = body[:65536].decode("utf-8", "replace") if isinstance(body, bytes | bytearray) else str(body)[:65536]
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except ValueError:
            return {}
    match = re.search(r"\r?\n\r?\n(\{.*?\})\r?\n--", text, re.S)
    try:
        return json.loads(match.group(1)) if match else {}
    except ValueError:
        return {}


def storage_call(verb: str, path: str, query: Mapping[str, list[str]], body: Any, exists: Exists) -> Call | None:
    """Cloud Storage JSON API (https://cloud.google.com/storage/docs/json_api/v1)."""
    bucket_path = re.fullmatch(r"/(?:upload/|download/)?storage/v1/b/([^/]+)(/o(?:/(.+))?)?", path)
    rewrite = re.fullmatch(r"/storage/v1/b/([^/]+)/o/(.+)/(rewriteTo|copyTo)/b/([^/]+)/o/(.+)", path)
    if rewrite:
        src_bucket, src, kind, dst_bucket, dst = (unquote(p) for p in rewrite.groups())
        source, target = _object(src_bucket, src), _object(dst_bucket, dst)
        checks = [("storage.objects.get", source), ("storage.objects.create", target)]
        if exists(dst_bucket, dst) and query.get("ifGenerationMatch", [""])[0] != "0":
            checks.append(("storage.objects.delete", target))
        return Call("storage.objects.rewrite" if kind == "rewriteTo" else "storage.objects.copy", target, tuple(checks))
    if not bucket_path:
        return Call(f"unmapped {verb} {path}", path, ())
    bucket, objects, name = bucket_path.group(1), bucket_path.group(2), bucket_path.group(3)
    bucket_name = f"projects/_/buckets/{unquote(bucket)}"
    if not objects:
        permission = {
            "GET": "storage.buckets.get",
            "PATCH": "storage.buckets.update",
            "DELETE": "storage.buckets.delete",
        }
        if verb not in permission:
            return Call(f"unmapped {verb} {path}", bucket_name, ())
        return Call(
            permission[verb].replace("buckets.update", "buckets.patch"), bucket_name, ((permission[verb], bucket_name),)
        )
    if path.startswith("/upload/"):
        if verb == "PUT" or "upload_id" in query:
            return None  # a resumable upload's later chunks: the session was checked when it was opened
        name = query.get("name", [None])[0] or _json_part(body).get("name")
        if not name:
            return Call(f"unmapped {verb} {path} (upload without an object name)", bucket_name, ())
        target = _object(unquote(bucket), name)
        checks = [("storage.objects.create", target)]
        if query.get("ifGenerationMatch", [""])[0] != "0" and exists(unquote(bucket), name):
            checks.append(("storage.objects.delete", target))  # an overwrite deletes the old generation
        return Call("storage.objects.insert", target, tuple(checks))
    if name is None:
        if verb == "GET":
            return Call("storage.objects.list", bucket_name, (("storage.objects.list", bucket_name),))
        return Call(f"unmapped {verb} {path}", bucket_name, ())
    target = _object(unquote(bucket), unquote(name))
    per_verb = {
        "GET": ("storage.objects.get", "storage.objects.get"),
        "DELETE": ("storage.objects.delete", "storage.objects.delete"),
        "PATCH": ("storage.objects.patch", "storage.objects.update"),
        "PUT": ("storage.objects.update", "storage.objects.update"),
    }
    if verb not in per_verb:
        return Call(f"unmapped {verb} {path}", target, ())
    method, needed = per_verb[verb]
    return Call(method, target, ((needed, target),))


_TABLE = r"`?([A-Za-z0-9_.\-]+(?:\.[A-Za-z0-9_\-]+){1,2})`?"
_WRITES = re.compile(
    rf"\b(?:DELETE\s+FROM|DELETE|INSERT\s+INTO|INSERT|UPDATE|MERGE\s+INTO|MERGE|TRUNCATE\s+TABLE)\s+{_TABLE}", re.I
)
_CREATES = re.compile(
    rf"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP(?:ORARY)?\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_TABLE}", re.I
)
_DROPS = re.compile(rf"\bDROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?{_TABLE}", re.I)
_READS = re.compile(rf"\b(?:FROM|JOIN|USING)\s+{_TABLE}", re.I)


def _table_name(ref: str, project: str, default_dataset: str | None) -> str | None:
    parts = ref.replace(":", ".").split(".")
    if len(parts) == 2:
        parts = [project, *parts]
    elif len(parts) == 1 and default_dataset:
        parts = [project, default_dataset, parts[0]]
    if len(parts) != 3:
        return None
    return f"projects/{parts[0]}/datasets/{parts[1]}/tables/{parts[2]}"


def _table(ref: Mapping[str, Any]) -> str:
    table = str(ref.get("tableId", "")).split("$")[0]  # a partition decorator is checked on its table
    return f"projects/{ref.get('projectId')}/datasets/{ref.get('datasetId')}/tables/{table}"


def query_checks(sql: str, project: str, default_dataset: str | None) -> list[tuple[str, str]]:
    """The table permissions a query's statements need: DML writes, DDL creates/drops, the rest reads."""
    checks: list[tuple[str, str]] = []
    written = set()
    for pattern, permission in ((_WRITES, "bigquery.tables.updateData"), (_DROPS, "bigquery.tables.delete")):
        for ref in pattern.findall(sql):
            if name := _table_name(ref, project, default_dataset):
                checks.append((permission, name))
                written.add(ref)
    for ref in _CREATES.findall(sql):
        if name := _table_name(ref, project, default_dataset):
            checks.append(("bigquery.tables.create", name.rsplit("/tables/", 1)[0]))
            written.add(ref)
    for ref in _READS.findall(sql):
        if ref not in written and (name := _table_name(ref, project, default_dataset)):
            checks.append(("bigquery.tables.getData", name))
    return checks


def job_checks(project: str, job: Mapping[str, Any]) -> list[tuple[str, str]]:
    configuration = job.get("configuration", {})
    checks = [("bigquery.jobs.create", f"projects/{project}")]
    if load := configuration.get("load"):
        target = _table(load.get("destinationTable", {}))
        checks.append(("bigquery.tables.updateData", target))
        if load.get("createDisposition", "CREATE_IF_NEEDED") == "CREATE_IF_NEEDED":
            checks.append(("bigquery.tables.create", target.rsplit("/tables/", 1)[0]))
        for uri in load.get("sourceUris", []):
            bucket, _, name = uri.removeprefix("gs://").partition("/")
            checks.append(("storage.objects.get", _object(bucket, name)))
    if query := configuration.get("query"):
        default = (query.get("defaultDataset") or {}).get("datasetId")
        checks += query_checks(query.get("query", ""), project, default)
        if destination := query.get("destinationTable"):
            checks.append(("bigquery.tables.updateData", _table(destination)))
    for kind in ("copy", "extract"):
        if kind in configuration:
            checks.append(("unmapped", f"{kind} job"))  # not used by the pipeline: fail closed
    return checks


def bigquery_call(verb: str, path: str, body: Any) -> Call | None:
    """BigQuery REST API v2 (https://cloud.google.com/bigquery/docs/reference/rest)."""
    if re.fullmatch(r"/upload/bigquery/v2/projects/[^/]+/jobs", path) and verb == "PUT":
        return None  # a resumable load's data: the job was checked when the session was opened
    match = re.fullmatch(r"(?:/upload)?/bigquery/v2/projects/([^/]+)(/.*)?", path)
    if not match:
        return Call(f"unmapped {verb} {path}", path, ())
    project, rest = match.group(1), unquote(match.group(2) or "")
    project_name = f"projects/{project}"
    routes: list[tuple[str, str, str, Callable[[re.Match[str]], list[tuple[str, str]]]]] = [
        ("POST", r"/datasets", "bigquery.datasets.insert", lambda m: [("bigquery.datasets.create", project_name)]),
        ("GET", r"/datasets/([^/]+)", "bigquery.datasets.get", lambda m: [("bigquery.datasets.get", ds(m))]),
        ("GET", r"/datasets/([^/]+)/tables", "bigquery.tables.list", lambda m: [("bigquery.tables.list", ds(m))]),
        ("POST", r"/datasets/([^/]+)/tables", "bigquery.tables.insert", lambda m: [("bigquery.tables.create", ds(m))]),
        ("GET", r"/datasets/([^/]+)/tables/([^/]+)", "bigquery.tables.get", lambda m: [("bigquery.tables.get", tb(m))]),
        (
            "PATCH",
            r"/datasets/([^/]+)/tables/([^/]+)",
            "bigquery.tables.patch",
            lambda m: [("bigquery.tables.update", tb(m))],
        ),
        (
            "PUT",
            r"/datasets/([^/]+)/tables/([^/]+)",
            "bigquery.tables.update",
            lambda m: [("bigquery.tables.update", tb(m))],
        ),
        (
            "DELETE",
            r"/datasets/([^/]+)/tables/([^/]+)",
            "bigquery.tables.delete",
            lambda m: [("bigquery.tables.delete", tb(m))],
        ),
        (
            "GET",
            r"/datasets/([^/]+)/tables/([^/]+)/data",
            "bigquery.tabledata.list",
            lambda m: [("bigquery.tables.getData", tb(m))],
        ),
        ("POST", r"/jobs", "bigquery.jobs.insert", lambda m: job_checks(project, _json_part(body))),
        ("POST", r"/queries", "bigquery.jobs.query", lambda m: query_post(_json_part(body))),
        ("GET", r"/jobs/([^/]+)", "bigquery.jobs.get", lambda m: [("bigquery.jobs.create", project_name)]),
        ("POST", r"/jobs/([^/]+)/cancel", "bigquery.jobs.cancel", lambda m: [("bigquery.jobs.create", project_name)]),
        (
            "GET",
            r"/queries/([^/]+)",
            "bigquery.jobs.getQueryResults",
            lambda m: [("bigquery.jobs.create", project_name)],
        ),
    ]

    def ds(m: re.Match[str]) -> str:
        return f"{project_name}/datasets/{m.group(1)}"

    def tb(m: re.Match[str]) -> str:
        return f"{project_name}/datasets/{m.group(1)}/tables/{m.group(2).split('$')[0]}"

    def query_post(request: Mapping[str, Any]) -> list[tuple[str, str]]:
        default = (request.get("defaultDataset") or {}).get("datasetId")
        return [("bigquery.jobs.create", project_name), *query_checks(request.get("query", ""), project, default)]

    for route_verb, pattern, method, checks in routes:
        found = re.fullmatch(pattern, rest)
        if found and verb == route_verb:
            listed = checks(found)
            return Call(method, listed[-1][1] if method != "bigquery.jobs.insert" else project_name, tuple(listed))
    return Call(f"unmapped {verb} {path}", project_name, ())


def call_for(verb: str, url: str, body: Any, exists: Exists) -> Call | None:
    """The API call an HTTP request makes; None for what is no API call of its own (upload chunks)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if "/storage/v1/" in parts.path:
        return storage_call(verb.upper(), parts.path, query, body, exists)
    if "/bigquery/v2/" in parts.path:
        return bigquery_call(verb.upper(), parts.path, body)
    return Call(f"unmapped {verb} {url}", url, ())
