"""The BigQuery bridge: an HTTP proxy in front of the BigQuery emulator, so the local stack runs
the very BigQuery requests that run in Google Cloud.

    python -m local.stack.bq_bridge --port 19050 --upstream http://127.0.0.1:19052

Why it exists: `shared/load/bigquery.py` replaces a day with one load job into the partition
decorator `table$YYYYMMDD` with WRITE_TRUNCATE (no DML quota, the rest of the table untouched).
The emulator rejects decorators ("Invalid table id for SQL"), so the stack once ran a second
strategy of its own in shared/, and the cloud path never ran before Google Cloud. Now shared/ has
one path and the emulator's gap is bridged here, in the stack, where it belongs.

What it does: every request is forwarded to the emulator unchanged, except
- `POST .../projects/P/jobs` of a load job whose destination table carries a partition decorator:
  carried out with the decorator's semantics (local/stack/bq_partition.py) and answered with the
  job resource Google would return; and a job id that was already used is answered 409
  (Google's "Already Exists: Job"), which the emulator does not enforce;
- `GET .../projects/P/jobs/ID` of such a job: its stored resource;
- `PATCH`/`PUT` of a table's schema: the etag precondition, no dropped field, and an added field
  added to the stored table too (local/stack/bq_schema.py).
Anything the bridge cannot reach upstream is a 503 (the client retries it, as a Google 503).
Its log is one JSON line per bridged job (.state/logs/bqbridge.log).
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from local.stack import bq_partition, bq_schema

_JOBS = re.compile(r"^/bigquery/v2/projects/(?P<project>[^/]+)/jobs(?:/(?P<job>[^/?]+))?(?:\?.*)?$")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class Upstream:
    """The emulator's REST endpoint: raw forwarding and small JSON calls (used by bq_partition)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url if "//" in url else f"http://{url}")
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        body = None if payload is None else json.dumps(payload).encode()
        status, _, data = self.request(method, path, body, {"Content-Type": "application/json"})
        try:
            return status, json.loads(data) if data else {}
        except ValueError:
            return status, {"error": {"code": status, "message": data.decode(errors="replace")[:500]}}


class Bridge:
    """The bridged jobs by id (this process's memory: a restart forgets them, as a new emulator would)."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.jobs: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def insert_job(self, project: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """A decorated load job carried out here, or None: forward the request unchanged."""
        load = (body.get("configuration") or {}).get("load") or {}
        if not bq_partition.decorated(load):
            return None
        job_id = (body.get("jobReference") or {}).get("jobId") or ""
        with self.lock:
            if job_id in self.jobs:
                return 409, bq_partition.error_body(409, "duplicate", f"Already Exists: Job {project}:{job_id}")
            # Reserved while it runs: a concurrent insert of the same id gets 409 and, as in Google
            # Cloud, finds the job RUNNING when it looks it up, then DONE.
            self.jobs[job_id] = bq_partition.running(project, body)
        try:
            job = bq_partition.run_load(self.upstream, project, body)
        except OSError as exc:  # the emulator is down or failing: Google's 503, the id stays unused
            with self.lock:
                self.jobs.pop(job_id, None)
            return 503, bq_partition.error_body(503, "backendError", f"BigQuery emulator unavailable: {exc}")
        with self.lock:
            self.jobs[job_id] = job
        log(job)
        return 200, job

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self.jobs.get(job_id)


def log(job: dict[str, Any]) -> None:
    load = job["configuration"]["load"]
    print(
        json.dumps(
            {
                "event": "decorated_load",
                "job_id": job["jobReference"]["jobId"],
                "table": bq_partition.table_path(load["destinationTable"]),
                "write_disposition": load.get("writeDisposition", "WRITE_APPEND"),
                "state": job["status"]["state"],
                "error": job["status"].get("errorResult"),
                "output_rows": job["statistics"].get("load", {}).get("outputRows"),
            }
        ),
        flush=True,
    )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bridge: Bridge

    def log_message(self, format: str, *args: Any) -> None:  # the emulator logs every request already
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        self._reply(status, [("Content-Type", "application/json; charset=UTF-8")], json.dumps(payload).encode())

    def _forward(self, body: bytes) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            status, response_headers, data = self.bridge.upstream.request(self.command, self.path, body, headers)
        except OSError as exc:  # the emulator is down or restarting: retryable, as Google's 503
            self._json(503, bq_partition.error_body(503, "backendError", f"BigQuery emulator unreachable: {exc}"))
            return
        self._reply(status, response_headers, data)

    def _handle(self) -> None:
        body = self._body()
        match = _JOBS.match(self.path)
        try:
            if match and self.command == "POST" and not match.group("job") and body:
                answer = self.bridge.insert_job(match.group("project"), json.loads(body))
                if answer is not None:
                    self._json(*answer)
                    return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            updated = bq_schema.update_table(self.bridge.upstream, self.command, self.path, body, headers)
            if updated is not None:
                self._json(*updated)
                return
            if match and self.command == "GET" and match.group("job"):
                job = self.bridge.get_job(match.group("job"))
                if job is not None:
                    self._json(200, job)
                    return
        except (ValueError, KeyError, TypeError) as exc:
            self._json(400, bq_partition.error_body(400, "invalid", f"bad request to the BigQuery bridge: {exc}"))
            return
        except bq_partition.JobFailed as exc:  # a statement of a schema update failed upstream
            self._json(400, bq_partition.error_body(400, exc.reason, exc.message))
            return
        except OSError as exc:
            self._json(503, bq_partition.error_body(503, "backendError", f"BigQuery emulator unreachable: {exc}"))
            return
        self._forward(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the emulator's REST endpoint, http://host:port")
    args = parser.parse_args(argv)
    Handler.bridge = Bridge(Upstream(args.upstream))
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(json.dumps({"event": "bridge_started", "port": args.port, "upstream": args.upstream}), flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
