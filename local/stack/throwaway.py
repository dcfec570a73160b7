"""A second local stack of its own, for the benchmark and the chaos harness.

Why: `python -m bench --stack` and `python -m chaos` start, break and delete a whole stack.
They must never touch the stack a person (or the test suite) is using, so theirs lives in a
directory of their own (TAXI_STATE_DIR) on ports of its own (TAXI_PORT_BASE); the virtual
environments are shared with the repository's .state.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = str(REPO / "local_emulator.sh")


def stack_env(state: Path, port_base: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment `local_emulator.sh` runs with for that stack (extra: settings for its functions)."""
    return {
        **os.environ,
        "TAXI_STATE_DIR": str(state),
        "TAXI_PORT_BASE": str(port_base),
        "LOG_LEVEL": "INFO",
        **(extra or {}),
    }


def up(env: Mapping[str, str]) -> None:
    """`./local_emulator.sh up`: starts whatever of the stack is not running (idempotent)."""
    try:
        subprocess.run(
            [SCRIPT, "up"], env=dict(env), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"the throwaway stack did not start:\n{exc.stderr[-3000:]}") from exc


@contextlib.contextmanager
def throwaway_stack(work: Path, port_base: int, extra: Mapping[str, str] | None = None) -> Iterator[dict[str, str]]:
    """`./local_emulator.sh up` with its state in `work/stack`; yields the stack's environment
    (its env file, plus TAXI_STATE_DIR); `down --clean` when done, whatever happened."""
    state = work / "stack"
    work.chmod(0o755)  # PostgreSQL runs as the postgres user and must reach its data directory
    env = stack_env(state, port_base, extra)
    try:
        up(env)
        yield {**read_env(state / "env"), "TAXI_STATE_DIR": str(state)}
    finally:
        subprocess.run([SCRIPT, "down", "--clean"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read_env(path: Path) -> dict[str, str]:
    """The stack's env file: `export NAME='value'` lines."""
    out = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^export (\w+)='(.*)'$", line)
        if match:
            out[match[1]] = match[2].replace("'\\''", "'")
    return out


def log_counts(state: Path) -> dict[str, int]:
    """What the stack's logs say about delivery: failures the functions raised (each one a
    redelivery), and pushes the Pub/Sub emulator reports as failed."""
    logs = state / "logs"
    text = {p.name: p.read_text(errors="replace") for p in logs.glob("*.log")}
    relay = text.get("relay.log", "")
    return {
        "function_retries": sum(t.count("will be retried") for n, t in text.items() if n.startswith("fn-")),
        "failed_pushes": relay.count('"event": "delivery_failed"'),  # the relay's json.dumps lines
        "relay_dead_letters": relay.count('"event": "dead_lettered"'),
        # copies of a message the emulator handed out again while it was pushed or once acked (not pushed)
        "relay_copies": relay.count('"event": "copy_joined"') + relay.count('"event": "copy_acked"'),
        "dead_letters": sum(t.count("rejected the event") for n, t in text.items() if n.startswith("fn-")),
        "ingest_outcomes": text.get("fn-ingest.log", "").count('"function":"ingest"'),
    }
