"""The BigQuery requests the pipeline's code sends, recorded from the real client library.

The BigQuery emulator accepts job configurations Google refuses (and refuses some Google accepts,
e.g. partition decorators), so what it runs proves nothing about the request itself. Here a real
`google.cloud.bigquery.Client` runs the pipeline's own functions (shared/load/bigquery.py,
shared/operate/status_reads.py) with its transport replaced: every REST call is recorded with
its body (the library's `to_api_repr()` of the job, table or dataset, as it would go on the wire)
and answered with the smallest response that lets the code go on. Nothing leaves the machine.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery as bq

UPLOAD_PATH = "/upload/bigquery/v2/projects/{project}/jobs"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: Any

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


class FakeBigQuery:
    """Answers the client's calls like BigQuery does for a job that succeeded at once.

    `existing_table`: a table resource returned for tables.get (and a 409 for tables.insert), as
    when the table exists already, e.g. with other descriptions, so the code patches it."""

    def __init__(self, project: str, existing_table: dict[str, Any] | None = None):
        self.project = project
        self.existing_table = existing_table
        self.requests: list[Request] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.client = bq.Client(project=project, credentials=AnonymousCredentials(), location="US")
        self.client._connection.api_request = self.api_request  # type: ignore[method-assign]
        self.client._do_resumable_upload = self.upload  # type: ignore[method-assign]
        self.client._do_multipart_upload = self.multipart_upload  # type: ignore[method-assign]

    def api_request(self, method: str, path: str, data: Any = None, **_: Any) -> dict[str, Any]:
        self.requests.append(Request(method, path, copy.deepcopy(data)))
        parts = path.strip("/").split("/")
        kind = parts[2] if len(parts) > 2 else ""
        if kind == "jobs" and method == "POST":
            return self._job(data)
        if kind == "jobs" and method == "GET":
            return self.jobs[parts[3]]
        if kind == "queries":
            job = self.jobs[parts[3]]
            return {
                "jobReference": job["jobReference"],
                "jobComplete": True,
                "totalRows": "0",
                "schema": {"fields": []},
            }
        if kind == "datasets" and method == "POST" and len(parts) == 3:
            return data
        if kind == "datasets" and len(parts) >= 5 and parts[4] == "tables":
            return self._table(method, data)
        if kind == "datasets" and method == "GET":
            return {"datasetReference": {"projectId": parts[1], "datasetId": parts[3]}}
        raise AssertionError(f"the fake BigQuery does not answer {method} {path}")

    def _table(self, method: str, data: Any) -> dict[str, Any]:
        if method == "POST" and self.existing_table is not None:
            raise gexc.Conflict("Already Exists: Table")
        if method == "GET":
            if self.existing_table is None:
                raise gexc.NotFound("Not found: Table")
            return copy.deepcopy(self.existing_table)
        if method == "DELETE":
            return {}
        # tables.insert creates it and tables.patch changes it, as BigQuery keeps a table
        self.existing_table = {**(self.existing_table or {}), **data, "etag": "e1"}
        return copy.deepcopy(self.existing_table)

    def _job(self, resource: dict[str, Any]) -> dict[str, Any]:
        job = copy.deepcopy(resource)
        job["status"] = {"state": "DONE"}
        kind = next(iter(job["configuration"].keys() - {"labels", "jobTimeoutMs", "jobType", "dryRun"}))
        job["statistics"] = {kind: {"outputRows": "3"} if kind == "load" else {}}
        self.jobs[job["jobReference"]["jobId"]] = job
        return job

    def upload(self, stream: Any, metadata: Any, num_retries: Any, timeout: Any, project: Any = None) -> Any:
        self.requests.append(Request("POST", UPLOAD_PATH.format(project=project), copy.deepcopy(metadata)))
        return _Response(self._job(metadata))

    def multipart_upload(
        self, stream: Any, metadata: Any, size: Any, num_retries: Any, timeout: Any, project: Any = None
    ) -> Any:
        return self.upload(stream, metadata, num_retries, timeout, project)


class _Response:
    def __init__(self, body: dict[str, Any]):
        self.body = body

    def json(self) -> dict[str, Any]:
        return self.body


# A load from a media upload (jobs.insert's mediaUpload) has its data in the upload, so the load
# configuration's "[Required]" sourceUris is absent by design.
UPLOAD_NOT_REQUIRED = {"body.configuration.load.sourceUris"}


def upload_method(path: str) -> str | None:
    """The discovery method of a media upload (jobs.insert with mediaUpload), or None."""
    return "bigquery.jobs.insert" if path.startswith("/upload/bigquery/v2/") else None
