"""The BigQuery emulator and the stack's bridge in front of it, started for the benchmark (bq_big).

The same two processes the local stack runs (local/stack/services.sh): bqemulator from
.state/venv-bq, reading gs:// objects from fake-gcs-server's directory, and local/stack/bq_bridge.py,
which carries out the loader's partition-decorator load jobs on it. On free ports, with the
emulator's data in a temporary directory; both are gone when the run ends.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from bench.servers import ServerError, _stop, _wait, free_port
from bench.spawn import REPO


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def bigquery(gcs_root: Path, project: str) -> Iterator[str]:
    """bqemulator + bridge; yields BIGQUERY_EMULATOR_HOST (the bridge's address)."""
    emulator_python = REPO / ".state" / "venv-bq" / "bin" / "python"
    if not emulator_python.exists():
        raise ServerError(f"{emulator_python} missing: run ./local_emulator.sh up once (it builds .state/venv-bq)")
    root = Path(tempfile.mkdtemp(prefix="bench-bigquery-"))
    emulator_port, grpc_port, bridge_port = free_port(), free_port(), free_port()
    env = {
        "HOME": str(REPO / ".state" / "bigquery" / "home"),  # DuckDB's extensions, installed by the stack
        "PATH": "/usr/bin:/bin",
        "BQEMU_GCS_LOCAL_ROOT": str(gcs_root),
        "BQEMU_TIME_TRAVEL_RETENTION_DAYS": "0",
    }
    procs: list[subprocess.Popen] = []
    try:
        log = root / "bigquery.log"
        with open(log, "wb") as out:
            procs.append(
                subprocess.Popen(
                    # started as the stack starts it (local/stack/bq_emulator.py: no unreadable table copies)
                    [str(emulator_python), str(REPO / "local" / "stack" / "bq_emulator.py"), "start"]
                    + ["--rest-host", "127.0.0.1", "--rest-port", str(emulator_port)]
                    + ["--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port), "--project", project]
                    + ["--persistent", "--data-dir", str(root / "data"), "--log-format", "console"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        _wait(lambda: _ready(f"http://127.0.0.1:{emulator_port}/readyz"), "bqemulator", procs[0], log)
        bridge_log = root / "bqbridge.log"
        with open(bridge_log, "wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "local.stack.bq_bridge", "--port", str(bridge_port)]
                    + ["--upstream", f"http://127.0.0.1:{emulator_port}"],
                    cwd=REPO,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        _wait(lambda: _ready(f"http://127.0.0.1:{bridge_port}/readyz"), "the BigQuery bridge", procs[1], bridge_log)
        yield f"http://127.0.0.1:{bridge_port}"
    finally:
        for proc in reversed(procs):
            _stop(proc)
        import shutil

        shutil.rmtree(root, ignore_errors=True)
