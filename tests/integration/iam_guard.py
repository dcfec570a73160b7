"""Fail the test during which a function made a call its deployed service account could not make.

A denied call already fails with Google's 403 where it is made, but code may absorb the error (the
run ledger never fails the work it describes; a served function's failure is only a dead letter the
test may not look at). The record the stack keeps (local/stack/iam_enforce.py) sees every denial in
every process: a denial recorded while the test ran fails it, naming function, API method, resource
and the missing permission. A served function's denial is seen by the test that was running then.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.stack import iam_enforce, iam_hooks


def record_dir() -> Path | None:
    explicit = os.environ.get("TAXI_IAM_RECORD")
    state = os.environ.get("TAXI_STATE_DIR")
    return Path(explicit) if explicit else (Path(state) / "iam" if state else None)


def _sizes(folder: Path) -> dict[Path, int]:
    return {path: path.stat().st_size for path in folder.glob("calls-*.jsonl")} if folder.is_dir() else {}


def denials_since(folder: Path, before: dict[Path, int]) -> list[dict]:
    found = []
    for path, size in _sizes(folder).items():
        with open(path, "rb") as records:
            records.seek(before.get(path, 0))
            for line in records.read(size - before.get(path, 0)).splitlines():
                entry = json.loads(line)
                if entry["outcome"] == "denied" and not entry.get("tolerated"):
                    found.append(entry)
    return found


def describe(entry: dict) -> str:
    missing = "; ".join(f"{permission} on {resource}" for permission, resource in entry["missing"])
    return f"function {entry['function']}: {entry['method']} on {entry['resource']} lacks {missing}"


if iam_enforce.mode() != "off":
    iam_hooks.install_for_tests()


@pytest.fixture(autouse=True)
def iam_guard() -> Iterator[None]:
    folder = record_dir()
    if folder is None or iam_enforce.mode() != "enforce":
        yield
        return
    before = _sizes(folder)
    yield
    denied = sorted({describe(entry) for entry in denials_since(folder, before)})
    if denied:
        pytest.fail(
            "calls the deployed IAM (infra/terraform/iam.tf) would refuse, made during this test:\n  "
            + "\n  ".join(denied),
            pytrace=False,
        )
