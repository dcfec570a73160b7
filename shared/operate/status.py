"""Which dates are loaded where: the truth read from the lake, BigQuery and Postgres.

Nothing here trusts a log or a bookkeeping table alone. For one service and an
inclusive date range it reads:
- the lake: `trips/` objects and their `rows_written` metadata, `rejects/`
  objects' `rows_rejected`, and `quarantine/` objects (a quarantine newer than the
  trips object means the latest ingest of that date failed its checks);
- BigQuery: a grouped COUNT(*) per `pickup_date` of `{service}_trips`;
- Postgres: a grouped count per `pickup_date` of `{schema}.{service}_trips` and
  the newest `loads` ledger entry per date (which generation was loaded);
- the run ledger (`runs/`, shared/core/ledger.py), one listing: where the counts say
  `missing` or `partial`, a date whose work is in flight or was given up on is
  `queued`, `running`, `retrying` or `dead_lettered` instead, so a date being processed is
  never reported as never asked for. The counts still decide `complete`.
A table or ledger that does not exist yet means 0 rows, not an error: a fresh
project is simply all `missing`. The classification (`classify`) is a pure
function of the counts, so it is unit-tested from plain data.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Mapping

from shared.core import ledger as run_ledger
from shared.core import paths
from shared.core.errors import ValidationError
from shared.core.messages import json_object, parse_date, parse_service, today_in_new_york
from shared.core.settings import Settings
from shared.ingest.source import source_url

COMPLETE, PARTIAL, MISMATCH, FAILED, MISSING = "complete", "partial", "mismatch", "failed", "missing"
RUNNING, RETRYING, DEAD_LETTERED = run_ledger.RUNNING, run_ledger.RETRYING, run_ledger.DEAD_LETTERED
QUEUED = run_ledger.QUEUED
STATES = (COMPLETE, QUEUED, RUNNING, RETRYING, PARTIAL, MISMATCH, FAILED, DEAD_LETTERED, MISSING)
LEDGER_STATES = (QUEUED, RUNNING, RETRYING, DEAD_LETTERED)
STATE_MEANING = {
    COMPLETE: "same rows in the lake, BigQuery and Postgres",
    QUEUED: "not everywhere yet: a backfill published its ingest message, not delivered yet",
    RUNNING: "not everywhere yet: a function is working on it now",
    RETRYING: "not everywhere yet: an attempt failed and the platform retries it",
    DEAD_LETTERED: "not everywhere: a function gave up on it (see the reason and the dead-letter topic)",
    PARTIAL: "in some places only",
    MISMATCH: "everywhere, but the counts (or the loaded version) differ",
    FAILED: "the latest ingest was quarantined by a data-quality check",
    MISSING: "nowhere",
}


def classify(lake_rows: int | None, bigquery_rows: int | None, postgres_rows: int | None, *,
             failed: bool = False, stale: bool = False) -> str:
    """One state from the three counts. `lake_rows is None` means no trips object.

    An empty day (the lake object exists with 0 rows, nothing loaded) is
    complete: there was nothing to load. A date held somewhere and absent (0
    rows) somewhere else is partial; held everywhere with different counts is a
    mismatch, as is equal counts when Postgres loaded another generation
    (`stale`). A failed (quarantined) latest ingest wins over everything.
    """
    if failed:
        return FAILED
    bq, pg = bigquery_rows or 0, postgres_rows or 0
    if lake_rows is None and bq == 0 and pg == 0:
        return MISSING
    if lake_rows is not None and lake_rows == bq == pg:
        return MISMATCH if stale else COMPLETE
    counts = (lake_rows or 0, bq, pg)
    if lake_rows is None or 0 in counts:
        return PARTIAL
    return MISMATCH


@dataclass(frozen=True)
class LakeDay:
    """What the lake holds for one date (all optional: any object may be absent)."""

    rows: int | None = None
    rejected: int | None = None
    generation: int | None = None
    written_at: dt.datetime | None = None
    quarantined_at: dt.datetime | None = None
    quarantine_reason: str | None = None

    @property
    def failed(self) -> bool:
        """Quarantined after (or without) the current trips object: the latest attempt failed."""
        if self.quarantined_at is None:
            return False
        return self.written_at is None or self.quarantined_at > self.written_at


@dataclass(frozen=True)
class LedgerEntry:
    generation: str | None
    rows: int | None
    object: str | None
    loaded_at: dt.datetime | None


@dataclass
class DayStatus:
    service: str
    date: dt.date
    state: str
    lake_rows: int | None
    rejected_rows: int | None
    bigquery_rows: int
    postgres_rows: int
    lake_generation: int | None = None
    postgres_loaded: LedgerEntry | None = None
    notes: list[str] = field(default_factory=list)
    runs: list[run_ledger.RunRecord] = field(default_factory=list)  # each function's latest attempt
    run: run_ledger.RunRecord | None = None  # the one behind running / retrying / dead_lettered

    @property
    def label(self) -> str:
        """The state with what explains it: `retrying (attempt 3, download_failed)`."""
        if self.run is None or self.state not in LEDGER_STATES:
            return self.state
        if self.state == QUEUED:
            return f"{self.state} ({self.run.function})"
        if self.state == DEAD_LETTERED:
            return f"{self.state} ({self.run.reason or 'unknown'})"
        why = f", {self.run.reason}" if self.run.reason else ""
        return f"{self.state} (attempt {self.run.attempt}{why})"

    def as_dict(self) -> dict[str, Any]:
        ledger = self.postgres_loaded
        return {
            "date": self.date.isoformat(), "service": self.service, "state": self.state,
            "lake_rows": self.lake_rows, "rejected_rows": self.rejected_rows,
            "bigquery_rows": self.bigquery_rows, "postgres_rows": self.postgres_rows,
            "lake_generation": self.lake_generation,
            "postgres_loaded": None if ledger is None else {
                "generation": ledger.generation, "rows": ledger.rows, "object": ledger.object,
                "loaded_at": ledger.loaded_at.isoformat() if ledger.loaded_at else None},
            "notes": list(self.notes),
            "run": None if self.run is None else self.run.as_dict(),
            "runs": [r.as_dict() for r in self.runs],
        }


@dataclass
class StatusReport:
    service: str
    start: dt.date
    end: dt.date
    days: list[DayStatus]
    source_urls: dict[str, str] = field(default_factory=dict)
    generated_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))

    def summary(self) -> dict[str, int]:
        counts = {state: 0 for state in STATES}
        for day in self.days:
            counts[day.state] += 1
        return counts

    def not_complete(self) -> list[DayStatus]:
        return [day for day in self.days if day.state != COMPLETE]

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "start": self.start.isoformat(), "end": self.end.isoformat(),
                "generated_at": self.generated_at.isoformat(), "summary": self.summary(),
                "states": dict(STATE_MEANING), "source_urls": dict(self.source_urls),
                "dates": [day.as_dict() for day in self.days]}


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    """Inclusive of both ends."""
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def build_report(service: str, start: dt.date, end: dt.date, lake: Mapping[dt.date, LakeDay],
                 bigquery: Mapping[dt.date, int], postgres: Mapping[dt.date, int],
                 ledger: Mapping[dt.date, LedgerEntry], source_template: str | None = None,
                 runs: Mapping[dt.date, list[run_ledger.RunRecord]] | None = None,
                 now: dt.datetime | None = None) -> StatusReport:
    """Combine what each place holds into one status per date (pure: plain data in, report out)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    days = []
    for day in date_range(start, end):
        held = lake.get(day, LakeDay())
        bq, pg, loaded = bigquery.get(day, 0), postgres.get(day, 0), ledger.get(day)
        notes = []
        stale = False
        if loaded and loaded.generation and held.generation is not None and pg:
            stale = str(loaded.generation) != str(held.generation)
            if stale:
                notes.append(f"postgres holds generation {loaded.generation}, the lake {held.generation}")
        if held.failed:
            notes.append(f"quarantined: {held.quarantine_reason or 'failed a data-quality check'}")
        state = classify(held.rows, bq, pg, failed=held.failed, stale=stale)
        if state in (PARTIAL, MISMATCH):
            notes.extend(_differences(held.rows, bq, pg))
        attempts = (runs or {}).get(day, [])
        run = run_ledger.in_flight(attempts, now) if state in (MISSING, PARTIAL) else None
        if run is not None:
            state = run.outcome
            notes.insert(0, f"{run.describe()}" + (f": {run.error}" if run.error else ""))
        days.append(DayStatus(service, day, state, held.rows, held.rejected, bq, pg, held.generation,
                              loaded, notes, run_ledger.latest_by_function(attempts), run))
    urls: dict[str, str] = {}
    if source_template:
        for day in date_range(start, end):
            urls.setdefault(f"{day:%Y-%m}", source_url(source_template, service, day.year, day.month))
    return StatusReport(service, start, end, days, urls)


def _differences(lake_rows: int | None, bq: int, pg: int) -> list[str]:
    expected = lake_rows or 0
    notes = [] if lake_rows is not None else ["no trips object in the lake"]
    for name, rows in (("bigquery", bq), ("postgres", pg)):
        if rows != expected:
            notes.append(f"{name} has {rows} rows, the lake {expected}" if rows else f"not in {name}")
    return notes


# --- the HTTP request: as strict as the message contracts ----------------------------------------

STATUS_KEYS = frozenset({"service", "start", "end", "format"})
FORMATS = ("json", "html", "text")


@dataclass(frozen=True)
class StatusRequest:
    service: str
    start: dt.date
    end: dt.date
    format: str = "json"


def request_fields(request: Any) -> dict[str, Any]:
    """A JSON object body, or the query parameters, never both: one source of input, each key once."""
    raw = request.get_data(cache=True) or b""
    if raw.strip():
        if request.args:
            raise ValidationError("give the request as a JSON body or as query parameters, not both",
                                  field="body", value=raw[:200].decode("utf-8", "replace"))
        return json_object(raw, "body", what="body")
    fields: dict[str, Any] = {}
    for key in request.args:
        values = request.args.getlist(key)
        if len(values) > 1:
            raise ValidationError("given more than once", field=key, value=values)
        fields[key] = values[0]
    return fields


def parse_status_request(fields: Mapping[str, Any], max_dates: int, now: dt.datetime | None = None) -> StatusRequest:
    """service (default yellow), start and end (inclusive, required), format json|html|text."""
    unknown = sorted(set(fields) - STATUS_KEYS)
    if unknown:
        raise ValidationError(f"unknown key {unknown[0]!r}; allowed: {', '.join(sorted(STATUS_KEYS))}",
                              field=unknown[0], value=fields[unknown[0]])
    service = parse_service(fields.get("service", "yellow"))
    for key in ("start", "end"):
        if key not in fields:
            raise ValidationError(f"missing {key} date", field=key, value=None)
    today = today_in_new_york(now)
    start = parse_date(fields["start"], "start", service, today)
    end = parse_date(fields["end"], "end", service, today)
    if start > end:
        raise ValidationError(f"start is after end ({fields['end']})", field="start", value=fields["start"])
    count = (end - start).days + 1
    if count > max_dates:
        raise ValidationError(f"{count} dates exceed the maximum of {max_dates}", field="end", value=fields["end"])
    fmt = fields.get("format", "json")
    if fmt not in FORMATS:
        raise ValidationError(f"must be one of {', '.join(FORMATS)}", field="format", value=fmt)
    return StatusRequest(service, start, end, fmt)


# --- readers: one per place, each returning plain data -------------------------------------------


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
        days[day] = LakeDay(rows, rejected, generation, written_at,
                            _when(quarantine) if quarantine is not None else None,
                            (quarantine.metadata or {}).get("failed_check") if quarantine is not None else None)
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
    config = bq.QueryJobConfig(query_parameters=[
        bq.ScalarQueryParameter("start", "DATE", start), bq.ScalarQueryParameter("end", "DATE", end)])
    sql = (f"SELECT pickup_date, COUNT(*) AS n FROM `{table}` "
           "WHERE pickup_date BETWEEN @start AND @end GROUP BY pickup_date")
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


def read_postgres(connection: Any, schema: str, service: str, start: dt.date,
                  end: dt.date) -> tuple[dict[dt.date, int], dict[dt.date, LedgerEntry]]:
    """Rows per pickup_date of `{schema}.{service}_trips`, and the newest ledger entry per date."""
    cursor = connection.cursor()
    trips, loads = f"{_quote(schema)}.{_quote(service + '_trips')}", f"{_quote(schema)}.{_quote('loads')}"
    counts: dict[dt.date, int] = {}
    ledger: dict[dt.date, LedgerEntry] = {}
    if _exists(cursor, trips):
        cursor.execute(f"SELECT pickup_date, count(*) FROM {trips} WHERE pickup_date BETWEEN %s AND %s "
                       "GROUP BY pickup_date", (start, end))
        counts = {_as_date(day): int(n) for day, n in cursor.fetchall()}
    if _exists(cursor, loads):
        cursor.execute(
            f'SELECT DISTINCT ON (pickup_date) pickup_date, generation::text, "rows", object, loaded_at '
            f"FROM {loads} WHERE service = %s AND pickup_date BETWEEN %s AND %s "
            "ORDER BY pickup_date, loaded_at DESC", (service, start, end))
        for day, generation, rows, name, loaded_at in cursor.fetchall():
            ledger[_as_date(day)] = LedgerEntry(generation, _int(rows), name, loaded_at)
    connection.rollback()  # read-only: end the transaction, hold no snapshot
    return counts, ledger


def _exists(cursor: Any, relation: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,))
    return bool(cursor.fetchone()[0])


def report(service: str, start: dt.date, end: dt.date, settings: Settings, *,
           bucket: Any = None, bigquery_client: Any = None,
           connection: Callable[[Settings], ContextManager[Any]] | None = None) -> StatusReport:
    """Read all three places for (service, start..end) and classify every date.

    Postgres is reached through `shared.core.pg` (Cloud SQL connector or direct, pooled).
    """
    from shared.core import clients, pg

    bucket = bucket if bucket is not None else clients.storage().bucket(settings.lake_bucket)
    lake = read_lake(bucket, service, start, end)
    bigquery = read_bigquery(bigquery_client if bigquery_client is not None else clients.bigquery(),
                             bigquery_table(settings, service), start, end)
    runs = run_ledger.read_runs(bucket, service, start, end)
    with (connection or pg.connection)(settings) as conn:
        postgres, loads = read_postgres(conn, settings.pg_schema, service, start, end)
    return build_report(service, start, end, lake, bigquery, postgres, loads, settings.source_url_template, runs)

