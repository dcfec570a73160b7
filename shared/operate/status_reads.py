"""Status's readers: one per place (lake, BigQuery, Postgres, run ledger), each returning plain data.

Why apart from the model (shared/operate/status.py): these talk to the outside; the model is a
pure function of what they return, so it is unit-tested from plain data.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from shared.core import ledger_read, paths
from shared.core.settings import Settings
from shared.operate.status import LakeDay, LedgerEntry, StatusReport, build_report


def _range_prefix(kind: str, service: str, start: dt.date, end: dt.date) -> str:
    """The narrowest listing prefix covering the range (a year, a month or a decade of days)."""
    return paths.prefix(kind, service) + "pickup_date=" + os.path.commonprefix([start.isoformat(), end.isoformat()])


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _footer_rows(blob: Any) -> int | None:
    """Row count from the parquet footer, for objects written without `rows_written`."""
    import pyarrow.parquet as pq

    with blob.open("rb") as handle:
        return pq.ParquetFile(handle).metadata.num_rows


def read_lake(bucket: Any, service: str, start: dt.date, end: dt.date) -> dict[dt.date, LakeDay]:
    """trips/, rejects/ and quarantine/ objects of the range, by listing (one call per kind)."""
    found: dict[str, dict[dt.date, Any]] = {"trips": {}, "rejects": {}, "quarantine": {}}
    for kind, objects in found.items():
        for blob in bucket.list_blobs(prefix=_range_prefix(kind, service, start, end)):
            part = paths.parse_partition(blob.name)
            if part and part.kind == kind and part.service == service and start <= part.date <= end:
                objects[part.date] = blob
    days: dict[dt.date, LakeDay] = {}
    for day in set().union(*found.values()):
        trips, rejects, quarantine = (found[k].get(day) for k in ("trips", "rejects", "quarantine"))
        rows = rejected = generation = written_at = None
        if trips is not None:
            meta = trips.metadata or {}
            rows = _int(meta.get("rows_written"))
            if rows is None:
                rows = _footer_rows(trips)
            rejected = _int((rejects.metadata or {}).get("rows_rejected")) if rejects is not None else 0
            generation, written_at = _int(trips.generation), _when(trips)
        elif rejects is not None:
            rejected = _int((rejects.metadata or {}).get("rows_rejected"))
        days[day] = LakeDay(
            rows,
            rejected,
            generation,
            written_at,
            _when(quarantine) if quarantine is not None else None,
            (quarantine.metadata or {}).get("failed_check") if quarantine is not None else None,
        )
    return days


def _when(blob: Any) -> dt.datetime | None:
    return getattr(blob, "time_created", None) or getattr(blob, "updated", None)


def bigquery_table(settings: Settings, service: str) -> str:
    return f"{settings.project}.{settings.bq_dataset}.{service}_trips"


def read_bigquery(client: Any, table: str, start: dt.date, end: dt.date) -> dict[dt.date, int]:
    """Rows per pickup_date by a grouped count; a table (or dataset) not created yet holds 0."""
    from google.api_core.exceptions import NotFound
    from google.cloud import bigquery as bq

    try:
        client.get_table(table)
    except NotFound:
        return {}
    config = bq.QueryJobConfig(
        query_parameters=[bq.ScalarQueryParameter("start", "DATE", start), bq.ScalarQueryParameter("end", "DATE", end)]
    )
    sql = (
        f"SELECT pickup_date, COUNT(*) AS n FROM `{table}` "
        "WHERE pickup_date BETWEEN @start AND @end GROUP BY pickup_date"
    )
    try:
        rows = client.query(sql, job_config=config).result(timeout=120)
    except NotFound:  # dropped between the two calls
        return {}
    return {_as_date(row["pickup_date"]): int(row["n"]) for row in rows}


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def read_postgres(
    connection: Any, schema: str, service: str, start: dt.date, end: dt.date
) -> tuple[dict[dt.date, int], dict[dt.date, LedgerEntry]]:
    """Rows per pickup_date of `{schema}.{service}_trips`, and the newest ledger entry per date."""
    cursor = connection.cursor()
    trips, loads = f"{_quote(schema)}.{_quote(service + '_trips')}", f"{_quote(schema)}.{_quote('loads')}"
    counts: dict[dt.date, int] = {}
    ledger: dict[dt.date, LedgerEntry] = {}
    if _exists(cursor, trips):
        cursor.execute(
            f"SELECT pickup_date, count(*) FROM {trips} WHERE pickup_date BETWEEN %s AND %s GROUP BY pickup_date",
            (start, end),
        )
        counts = {_as_date(day): int(n) for day, n in cursor.fetchall()}
    if _exists(cursor, loads):
        cursor.execute(
            f'SELECT DISTINCT ON (pickup_date) pickup_date, generation::text, "rows", object, loaded_at '
            f"FROM {loads} WHERE service = %s AND pickup_date BETWEEN %s AND %s "
            "ORDER BY pickup_date, loaded_at DESC",
            (service, start, end),
        )
        for day, generation, rows, name, loaded_at in cursor.fetchall():
            ledger[_as_date(day)] = LedgerEntry(generation, _int(rows), name, loaded_at)
    connection.rollback()  # read-only: end the transaction, hold no snapshot
    return counts, ledger


def _exists(cursor: Any, relation: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,))
    return bool(cursor.fetchone()[0])


def report(
    service: str,
    start: dt.date,
    end: dt.date,
    settings: Settings,
    *,
    bucket: Any = None,
    bigquery_client: Any = None,
    connection: Callable[[Settings], AbstractContextManager[Any]] | None = None,
    runs: Mapping[dt.date, list[ledger_read.RunRecord]] | None = None,
) -> StatusReport:
    """Read all three places for (service, start..end) and classify every date.

    Postgres is reached through `shared.core.pg` (Cloud SQL connector or direct, pooled). `runs`:
    the range's run records when the caller listed them already (the repair lists them all once).
    The scheduled repair's last and next run come from what its last run recorded (shared/operate/repair.py).
    """
    from shared.core import clients, pg
    from shared.operate import repair_schedule

    bucket = bucket if bucket is not None else clients.storage().bucket(settings.lake_bucket)
    lake = read_lake(bucket, service, start, end)
    bigquery = read_bigquery(
        bigquery_client if bigquery_client is not None else clients.bigquery(),
        bigquery_table(settings, service),
        start,
        end,
    )
    if runs is None:
        runs = ledger_read.read_runs(bucket, service, start, end)
    with (connection or pg.connection)(settings) as conn:
        postgres, loads = read_postgres(conn, settings.pg_schema, service, start, end)
    now = dt.datetime.now(dt.UTC)
    marker = repair_schedule.read(bucket)
    return build_report(
        service,
        start,
        end,
        lake,
        bigquery,
        postgres,
        loads,
        settings.source_url_template,
        runs,
        now,
        repair_schedule.next_from_marker(marker, now),
        repair_schedule.ran_at(marker),
    )
