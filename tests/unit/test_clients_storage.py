"""The Cloud Storage client the functions use sends only the requests the code makes.

A throwaway HTTP server on localhost stands in for Cloud Storage and records every request; it
answers 404 to everything, the answer `get_blob` turns into None (no credentials needed).
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from shared.core.clients import storage_client


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.seen.append(self.path.split("?")[0])
        body = b'{"error": {"code": 404, "message": "not found"}}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def storage_server(monkeypatch) -> Iterator[list[str]]:
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{server.server_port}")
    yield _Recorder.seen
    server.shutdown()
    server.server_close()


def test_absent_objects_cost_one_request_each_and_no_bucket_lookup(storage_server):
    """The library would also look the bucket up (buckets.get) on its first request and after
    every 404: requests the functions' object-only roles refuse in Google Cloud (shared/core/clients.py)."""
    before = set(threading.enumerate())
    bucket = storage_client("p").bucket("lake")
    assert bucket.get_blob("trips/a.parquet") is None
    assert bucket.get_blob("runs/b.json") is None
    for thread in set(threading.enumerate()) - before:  # the library's lookups run on threads of their own
        thread.join(timeout=10)
    assert storage_server == ["/storage/v1/b/lake/o/trips%2Fa.parquet", "/storage/v1/b/lake/o/runs%2Fb.json"]
