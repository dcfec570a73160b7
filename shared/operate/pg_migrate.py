"""`python -m shared.operate.pg_migrate`: apply the Postgres migrations now, from a shell, without a function's timeout.

Why: a loader applies pending migrations at its cold start, which is right for every migration
that takes seconds. Moving a large unpartitioned table into month partitions
(`0004_partition_by_month`, README "The data layout") takes longer than a function's 540 s at
tens of millions of rows; run this first, with the loader's settings (PG_* and CLOUD_SQL_INSTANCE,
PG_IAM_AUTH as the function has them), then deploy. It is the loaders' own code path (same
advisory lock, same transaction), so running it twice, or while a loader starts, is safe.
Prints one JSON line: the migrations applied (an empty list when nothing was pending).
"""

from __future__ import annotations

import json
import sys
import time

from shared.core import pg
from shared.core.settings import LOAD_POSTGRES, get_settings
from shared.load.postgres import migrate


def main() -> int:
    settings = get_settings(LOAD_POSTGRES)
    started = time.monotonic()
    conn = pg.connect(settings, timeout=None)  # statements of the move may run for minutes
    try:
        applied = migrate(conn, settings.pg_schema)
    finally:
        conn.close()
    print(
        json.dumps({"schema": settings.pg_schema, "applied": applied, "seconds": round(time.monotonic() - started, 1)})
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
