"""The cost model's inputs, measured on the month's backfill through the throwaway stack (`--cost`).

Per function: requests and busy seconds from its outcome log lines (each delivery logs one, with
its `seconds`), CPU seconds from its process tree in /proc, before and after the backfill. Bytes
stored: the lake's objects under raw/, trips/ and rejects/ (staging/ expires, runs/ is tiny),
BigQuery's logical bytes of the month (8 bytes a number, date or timestamp; 2 + length a
string, as BigQuery bills logical storage), Postgres' table + index bytes. Bytes a status query
scans: its one column (pickup_date, 8 bytes a row) over the month. Cloud Storage operations are
estimated per request (CLASS_A_PER_REQUEST, CLASS_B_PER_REQUEST: the ledger's two writes and a
date's uploads; its reads), as the emulator counts none.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

FUNCTIONS = ("backfill", "ingest", "load_bigquery", "load_postgres")
CLASS_A_PER_REQUEST = 4
CLASS_B_PER_REQUEST = 6


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            todo += [int(p) for p in task.read_text().split()]
    return pids


def _cpu_seconds(pid: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += sum(int(f) for f in fields[11:15]) / ticks  # utime stime cutime cstime
    return total


def cpu_by_function(state: Path) -> dict[str, float]:
    """CPU seconds each function's process tree has used so far."""
    out = {}
    for name in FUNCTIONS:
        pid_file = state / "pids" / f"fn-{name}.pid"
        if pid_file.exists():
            out[name] = _cpu_seconds(int(pid_file.read_text().split()[0]))
    return out


def _requests(state: Path, name: str) -> list[float]:
    seconds = []
    for line in (state / "logs" / f"fn-{name}.log").read_text(errors="replace").splitlines():
        if line.startswith("{") and f'"function":"{name}"' in line:
            entry = json.loads(line)
            if entry.get("function") == name and "seconds" in entry:
                seconds.append(float(entry["seconds"]))
    return seconds


def functions(state: Path, cpu_before: dict[str, float]) -> dict[str, dict[str, float]]:
    cpu_after = cpu_by_function(state)
    out = {}
    for name in FUNCTIONS:
        seconds = _requests(state, name)
        if not seconds:
            continue
        ordered = sorted(seconds, reverse=True)
        out[name] = {
            "requests": len(seconds),
            "busy_seconds": sum(seconds),
            "cpu_seconds": cpu_after.get(name, 0.0) - cpu_before.get(name, 0.0),
            "first_seconds": ordered[0],  # ingest: the date that split the month
            "later_seconds": statistics.median(ordered[1:]) if len(ordered) > 1 else ordered[0],
        }
    return out


def _logical_bytes(table: Any) -> int:
    import pyarrow as pa
    import pyarrow.compute as pc

    total = 0
    for column in table.columns:
        valid = len(column) - column.null_count
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            total += 2 * valid + (pc.sum(pc.binary_length(column)).as_py() or 0)
        else:
            total += 8 * valid
    return total


def stored(dest: Any, pg_env: dict[str, str]) -> dict[str, int]:
    """Bytes the month holds in the lake, BigQuery (logical) and Postgres, and a status scan's bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    bucket = dest.storage.bucket(dest.settings.lake_bucket)
    lake, bq, rows = 0, 0, 0
    for blob in dest.storage.list_blobs(bucket):
        if blob.name.startswith(("raw/", "trips/", "rejects/")):
            lake += blob.size or 0
        if blob.name.startswith(f"trips/{dest.service}/"):
            table = pq.read_table(pa.BufferReader(blob.download_as_bytes()))
            bq += _logical_bytes(table)
            rows += table.num_rows
    return {"lake_bytes": lake, "bq_bytes": bq, "pg_bytes": _pg_bytes(dest, pg_env), "status_bytes": 8 * rows}


def _pg_bytes(dest: Any, env: dict[str, str]) -> int:
    import pg8000.native

    conn = pg8000.native.Connection(
        user=env["PG_USER"],
        password=env["PG_PASSWORD"],
        host=env["PG_HOST"],
        port=int(env["PG_PORT"]),
        database=env["PG_DATABASE"],
    )
    try:
        table = f"{dest.settings.pg_schema}.{dest.service}_trips"
        sql = (  # a plain table, or a partitioned one: the sum over its partitions
            "SELECT GREATEST(pg_total_relation_size(CAST(:t AS regclass)), "
            "(SELECT COALESCE(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree(CAST(:t AS regclass))))"
        )
        return int(conn.run(sql, t=table)[0][0] or 0)
    finally:
        conn.close()


def collect(dest: Any, env: dict[str, str], state: Path, cpu_before: dict[str, float]) -> dict[str, Any]:
    figures = functions(state, cpu_before)
    requests = sum(int(f["requests"]) for f in figures.values())
    return {
        "functions": figures,
        **stored(dest, env),
        "gcs_class_a": CLASS_A_PER_REQUEST * requests,
        "gcs_class_b": CLASS_B_PER_REQUEST * requests,
    }
