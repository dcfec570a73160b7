"""The TLC file host as the chaos run sees it: the local TLC server, failing at a known rate.

Why: the month download is the pipeline's only dependency outside Google Cloud, and the one
that fails in the most ways. Each GET of a month file draws from a seeded sequence: with
probability `rate` it gets one of these faults instead of the file (the n-th request gets the
n-th draw, so a seed gives the same schedule of faults whatever the interleaving). The pipeline
downloads a month once, so the first request of each month always gets a fault (the kinds in a
seeded cycle): every month meets one, and the retries after it meet `rate`:

    500        Internal Server Error
    503        Service Unavailable, with Retry-After
    hang       nothing for `hang_seconds` (longer than the pipeline's download timeout), then
               the connection is closed unanswered
    cut        the right Content-Length, then the connection closes halfway through the body
    truncated  half the gzip file with a Content-Length that matches it: the HTTP transfer is
               complete and only the gzip stream shows the cut
    html       200 with an HTML error page under the file's name
    changed    the month with new bytes (recompressed at another level): the same rows, so a
               second download of a month differs from the first byte-wise and not row-wise

Everything else is served by local.tlc_server unchanged. `enabled` switches the faults off
(the settle period and the clean run); `injected` is the record of every fault, with its time.
"""

from __future__ import annotations

import gzip
import random
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

from local.tlc_files import write_gzip
from local.tlc_server import _MONTH_PATH, TLCServer, _Handler

KINDS = ("500", "503", "hang", "cut", "truncated", "html", "changed")
_HTML = b"<!DOCTYPE html><html><body><h1>Unicorn!</h1><p>This page is taking too long to load.</p></body></html>\n"


class ChaosSource(TLCServer):
    """A TLCServer whose month GETs fail at `rate` with the kinds above (see the module docstring)."""

    def __init__(
        self,
        address: tuple[str, int],
        data_dir: str | Path,
        *,
        seed: int,
        rate: float,
        hang_seconds: float,
        kinds: tuple[str, ...] = KINDS,
        **options: Any,
    ) -> None:
        super().__init__(address, data_dir, **options)
        self.RequestHandlerClass = _ChaosHandler
        self.rate, self.hang_seconds, self.kinds = rate, hang_seconds, kinds
        self.enabled = False
        self.requests = 0
        self.injected: list[dict[str, Any]] = []
        self._rng = random.Random(f"{seed}/source")
        self._cycle: list[str] = []
        self._seen: set[str] = set()
        self._draw_lock = threading.Lock()
        self.started = time.monotonic()

    def draw(self, path: str) -> str | None:
        """The fault for this request (None: serve it), from the seeded sequence, recorded."""
        with self._draw_lock:
            self.requests += 1
            roll, pick = self._rng.random(), self._rng.randrange(len(self.kinds))
            first = path not in self._seen
            if not self.enabled or not (first or roll < self.rate):
                return None
            self._seen.add(path)
            if first:
                if not self._cycle:
                    self._cycle = list(self.kinds)
                    self._rng.shuffle(self._cycle)
                kind = self._cycle.pop()
            else:
                kind = self.kinds[pick]
            self.injected.append({"kind": kind, "path": path, "at_s": round(time.monotonic() - self.started, 3)})
            return kind

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client resetting a connection this server cut or left hanging is the fault working, not news."""
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)

    def changed_file(self, original: Path) -> Path:
        """The same month recompressed at gzip level 1: new bytes, the same rows (cached)."""
        target = self.data_dir / ".changed" / original.relative_to(self.data_dir)
        if target.is_file():
            return target
        with self._lock(str(target)):
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_suffix(".partial")
                with gzip.open(original, "rb") as plain, partial.open("wb") as sink:
                    write_gzip(plain.read(), sink, level=1)
                shutil.move(partial, target)
        return target


class _ChaosHandler(_Handler):
    server: ChaosSource

    def _route(self, body: bool) -> None:
        match = _MONTH_PATH.match(self.path.split("?", 1)[0])
        kind = self.server.draw(self.path) if body and match and match["fault"] is None else None
        if kind is None:
            return super()._route(body)
        if kind in ("500", "503"):
            status = int(kind)
            self._status = status
            self.send_response(status)
            if status == 503:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"chaos\n")
            return None
        if kind == "hang":
            self.server.stopping.wait(self.server.hang_seconds)
            self.close_connection = True
            return None
        if kind == "html":
            return self._reply(200, _HTML, "text/html; charset=utf-8", body)
        assert match is not None  # a fault is drawn only for a month's path
        found = self._month(match)
        if kind == "changed":
            return self._send_file(self.server.changed_file(found), body, ext=match["ext"])
        size = found.stat().st_size
        if kind == "truncated":
            return self._send_file(found, body, limit=size // 2, ext=match["ext"])
        # cut: announce the whole file, send half, drop the connection
        self._status = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with found.open("rb") as handle:
            self.wfile.write(handle.read(size // 2))
        self.close_connection = True
        return None

    def _month(self, match: Any) -> Path:
        """The month file the normal path would serve (generated on first use)."""
        rel = match["rel"]
        found = self.server.existing(rel)
        if found is not None:
            return found
        return self.server.month_file(rel, match["service"], int(match["year"]), int(match["month"]), match["ext"])


def serve(data_dir: Path, *, seed: int, rate: float, hang_seconds: float, rows_per_day: int) -> ChaosSource:
    """Start a ChaosSource on a free port on a daemon thread (faults off until `enabled`)."""
    server = ChaosSource(
        ("127.0.0.1", 0), data_dir, seed=seed, rate=rate, hang_seconds=hang_seconds, rows_per_day=rows_per_day
    )
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="chaos-source", daemon=True
    ).start()
    return server
