"""Start bqemulator (DuckDB) as the local stack runs it: `.state/venv-bq/bin/python bq_emulator.py start ...`.

Runs in the emulator's own virtualenv (.state/venv-bq), never the project's: it imports nothing
of this repository. Two things are settled before the emulator serves, each for a failure seen:

1. DuckDB imports optional modules lazily, from its own threads too. The emulator once hung for
   good with both threads in importlib's _ModuleLock.acquire for "pandas" (py-spy dump, a chaos
   soak's clean run), which venv-bq does not install. So what is installed of DuckDB's import
   cache is imported now, and what is not is marked absent (a None entry in sys.modules fails the
   import at once, without the module lock).
2. Time travel off means no copies. With `BQEMU_TIME_TRAVEL_RETENTION_DAYS=0` (services.sh sets
   it) bqemulator 1.4.0 still runs `CREATE TABLE <snapshot> AS SELECT * FROM <table>` after every
   load and DML statement (`SnapshotManager.record_change` -> `capture`), under its write lock, and
   then keeps the copy for 0 days. py-spy on the emulator: 96% of a DELETE's time was that copy,
   so a day's load cost grew with the whole table (0.6 s at one month; quadratic over a backfill).
   Google's BigQuery does nothing of the sort: a load into a partition decorator swaps one
   partition. A snapshot with a retention of 0 days can never be read (`FOR SYSTEM_TIME AS OF` must
   lie inside the retention window), so with retention 0 the automatic snapshot is skipped here;
   the change event it publishes still goes out, and snapshots a user asks for (`kind="USER"`,
   `CREATE SNAPSHOT TABLE`) are still made.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

OPTIONAL_MODULES = ("numpy", "pyarrow", "pyarrow.dataset", "pandas", "polars", "IPython", "fsspec")


def settle_optional_imports() -> None:
    for name in OPTIONAL_MODULES:
        if importlib.util.find_spec(name.split(".")[0]) is None:
            sys.modules[name] = None  # type: ignore[assignment]
        else:
            importlib.import_module(name)


def skip_unreadable_snapshots() -> None:
    if os.environ.get("BQEMU_TIME_TRAVEL_RETENTION_DAYS", "").strip() != "0":
        return
    from bqemulator.versioning import snapshots

    capture = snapshots.SnapshotManager.capture

    def capture_user_only(self: Any, project_id: str, dataset_id: str, table_id: str, *, kind: str = "AUTO") -> Any:
        if kind == "AUTO":
            return None  # record_change publishes TableDataChanged whatever capture returns
        return capture(self, project_id, dataset_id, table_id, kind=kind)

    snapshots.SnapshotManager.capture = capture_user_only


def main() -> int:
    settle_optional_imports()
    skip_unreadable_snapshots()
    from bqemulator.cli import main as emulator_main

    sys.argv[0] = "bqemulator"
    return int(emulator_main() or 0)


if __name__ == "__main__":
    sys.exit(main())
