"""The bridge's own leftovers: staging tables of loads the BigQuery emulator died under.

Why its own module: it is recovery, not the load protocol of bq_partition.py, and it needs only
the emulator's table listing and delete.
"""

from __future__ import annotations

import re
from typing import Any


def drop_leftover_staging(upstream: Any, project: str, dataset: str, base: str) -> list[str]:
    """Drop the staging tables of `base` that loads the emulator died under left behind; returns them.

    Why here: a staging table is dropped in `_replace`'s `finally`, which cannot reach an emulator
    that is gone (SIGTERM, a restart, an error answer). The next load of the same table drops it
    (issue 21 §7: "dropped by the next attempt"): under the table's lock no other load of it runs
    in this bridge, so every staging table of it that exists is a leftover. Best effort: a
    listing or drop that fails leaves them for the next load."""
    pattern = re.compile(rf"^_staging_bridge_{re.escape(base)}_\d{{8}}_[0-9a-f]{{8}}$")
    tables, token = [], ""
    while True:
        query = f"?maxResults=1000&pageToken={token}" if token else "?maxResults=1000"
        status, body = upstream.json("GET", f"/bigquery/v2/projects/{project}/datasets/{dataset}/tables{query}")
        if status >= 300 or not isinstance(body, dict):
            return []
        tables += [str((t.get("tableReference") or {}).get("tableId", "")) for t in body.get("tables") or []]
        token = body.get("nextPageToken") or ""
        if not token:
            break
    dropped = []
    for name in filter(pattern.match, tables):
        status, _, _ = upstream.request("DELETE", f"/bigquery/v2/projects/{project}/datasets/{dataset}/tables/{name}")
        if status < 300 or status == 404:
            dropped.append(name)
    return dropped
