"""`python -m bench --stack`: a month's backfill through the whole local stack, against its floor.

What a user waits for is not one split but a backfill: publish one message, wait until every
date is in BigQuery and Postgres. This measures exactly that, through the real path (backfill
topic -> backfill function -> 31 ingest messages -> ingest -> the lake's finalize
notifications -> both loaders), on a throwaway stack of its own (TAXI_STATE_DIR in the run's
temporary directory, its own TAXI_PORT_BASE), so it never touches a stack in use.

The floor is the same work done in-process with nothing between the steps: one split of the
month, one `psql \\copy` of all its rows, one BigQuery load job of all its rows (into the same
emulator and PostgreSQL the stack runs). The report gives the backfill's wall time as a ratio
to the floor's (the sum of the three), measured in the same run.

Then the same backfill again: nothing may be rewritten (same trips generations, nothing
reloaded). With `--year`, a backfill of a whole year (12 months at the generator's default
size) must also complete, every date equal in the lake, BigQuery and Postgres.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench import cost_measure, spawn
from bench.measure import Clock
from local.stack.throwaway import log_counts, throwaway_stack

SETTLE_TIMEOUT = 1800  # seconds a backfill may take before the benchmark gives up
POLL_SECONDS = 1.0


class Destinations:
    """Per-date row counts in the stack's lake, BigQuery and Postgres."""

    def __init__(self, env: dict[str, str], service: str) -> None:
        os.environ.update(env)
        from shared.core import clients
        from shared.core.settings import Settings

        clients.reset()
        self.settings = Settings.from_env(env)
        self.service = service
        self.storage, self.bigquery = clients.storage(), clients.bigquery()
        self.env = env

    def lake(self, start: dt.date, end: dt.date) -> dict[str, tuple[int, int]]:
        """date -> (rows_written, generation) of trips/ partitions in the range."""
        out = {}
        for blob in self.storage.list_blobs(self.settings.lake_bucket, prefix=f"trips/{self.service}/"):
            day = blob.name.split("pickup_date=", 1)[1].split("/", 1)[0]
            if start.isoformat() <= day <= end.isoformat():
                out[day] = (int(blob.metadata["rows_written"]), blob.generation)
        return out

    def bigquery_counts(self, start: dt.date, end: dt.date) -> dict[str, int]:
        table = f"{self.settings.project}.{self.settings.bq_dataset}.{self.service}_trips"
        sql = (
            f"SELECT CAST(pickup_date AS STRING) AS d, COUNT(*) AS n FROM `{table}` "
            f"WHERE pickup_date BETWEEN '{start}' AND '{end}' GROUP BY 1"
        )
        try:
            return {row["d"]: int(row["n"]) for row in self.bigquery.query(sql).result()}
        except Exception as exc:  # noqa: BLE001 - the table appears with the first load
            if "not found" in str(exc).lower():
                return {}
            raise

    def postgres_counts(self, start: dt.date, end: dt.date) -> dict[str, int]:
        import pg8000.native

        conn = pg8000.native.Connection(
            user=self.env["PG_USER"],
            password=self.env["PG_PASSWORD"],
            host=self.env["PG_HOST"],
            port=int(self.env["PG_PORT"]),
            database=self.env["PG_DATABASE"],
        )
        try:
            if not conn.run("SELECT to_regclass(:t)", t=f"{self.settings.pg_schema}.{self.service}_trips")[0][0]:
                return {}
            rows = conn.run(
                f"SELECT pickup_date::text, count(*) FROM {self.settings.pg_schema}.{self.service}_trips "
                "WHERE pickup_date BETWEEN :a AND :b GROUP BY 1",
                a=start,
                b=end,
            )
            return {d: int(n) for d, n in rows}
        finally:
            conn.close()


def publish(env: dict[str, str], topic: str, body: dict[str, Any]) -> None:
    from shared.core import clients

    clients.publisher().publish(clients.topic_path(env[topic], env["GCP_PROJECT"]), json.dumps(body).encode()).result(
        timeout=60
    )


def days_between(start: dt.date, end: dt.date) -> list[str]:
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def wait_complete(
    dest: Destinations, start: dt.date, end: dt.date, expected: dict[str, int] | None, since: float
) -> dict[str, Any]:
    """Poll until every date of the range is in the lake, BigQuery and Postgres with equal counts
    (and equal to `expected` when given). Returns the wall time from `since` and the counts."""
    days = days_between(start, end)
    deadline = since + SETTLE_TIMEOUT
    while True:
        lake = dest.lake(start, end)
        target = expected or {d: lake[d][0] for d in lake}
        if len(lake) == len(days) and all(lake[d][0] == target.get(d) for d in days):
            bq, pg = dest.bigquery_counts(start, end), dest.postgres_counts(start, end)
            loaded = {d: n for d, n in target.items() if n}  # a date without rows has no rows to find
            if all(bq.get(d) == n for d, n in loaded.items()) and all(pg.get(d) == n for d, n in loaded.items()):
                return {
                    "wall": time.monotonic() - since,
                    "dates": len(days),
                    "rows": sum(target.values()),
                    "generations": {d: lake[d][1] for d in days},
                }
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"backfill {start}..{end} not complete after {SETTLE_TIMEOUT} s: lake {len(lake)}/{len(days)} dates"
            )
        time.sleep(POLL_SECONDS)


def timeline(dest: Destinations, start: dt.date, end: dt.date, published_at: dt.datetime) -> dict[str, Any]:
    """Seconds from the publish to each function's first and last finished run on the range,
    from the run ledger (runs/): where the backfill's time goes."""
    from shared.core.ledger_read import read_runs

    bucket = dest.storage.bucket(dest.settings.lake_bucket)
    finished: dict[str, list[float]] = {}
    for records in read_runs(bucket, dest.service, start, end).values():
        for record in records:
            if record.updated_at is not None and record.outcome in ("succeeded", "skipped_up_to_date"):
                finished.setdefault(record.function, []).append((record.updated_at - published_at).total_seconds())
    return {
        function: {"first": round(min(times), 1), "last": round(max(times), 1), "runs": len(times)}
        for function, times in sorted(finished.items())
    }


def wait_ingest_outcomes(state: Path, count: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while log_counts(state)["ingest_outcomes"] < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {count} ingest outcomes logged after {timeout} s")
        time.sleep(POLL_SECONDS)


def bq_load(spec: dict[str, Any], clock: Clock) -> dict[str, Any]:
    """The floor's BigQuery step: one load job of the whole month's parquet, into a table of its own."""
    from google.cloud import bigquery

    from shared.core import clients
    from shared.load.bigquery import schema_fields

    client = clients.bigquery()
    table = f"{spec['env']['GCP_PROJECT']}.{spec['env']['BQ_DATASET']}._bench_floor_month"
    client.delete_table(table, not_found_ok=True)
    client.create_table(bigquery.Table(table, schema=schema_fields(spec["service"])))  # as the loader's table is
    config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.PARQUET, write_disposition=bigquery.WriteDisposition.WRITE_APPEND
    )
    with clock:
        client.load_table_from_uri(spec["uri"], table, job_config=config).result()
    rows = client.get_table(table).num_rows
    client.delete_table(table, not_found_ok=True)
    return {"rows_out": int(rows), "peak_mb": None}  # the emulator does the work, not this process


CONTENDERS = {"bq_load": bq_load}


def floor(env: dict[str, str], source: Path, service: str, work: Path) -> dict[str, Any]:
    """One split, one COPY and one BigQuery load of the month, each timed in its own process."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from shared.core import clients

    fmt = "parquet" if source.suffix == ".parquet" else "csv.gz"  # fhvhv: TLC's parquet (bench/run.py)
    base = {"source": str(source), "fmt": fmt, "service": service, "year": 2021, "month": 1}
    out = work / "floor-split"
    split = spawn.run("split", {**base, "out": str(out)}, work)
    month = pa.concat_tables([pq.read_table(p) for p in sorted(out.glob("*.trips.parquet"))])
    expected: dict[str, int] = {}
    for p in sorted(out.glob("*.trips.parquet")):
        expected[p.name.split(".", 1)[0]] = pq.read_metadata(p).num_rows
    csv, parquet = work / "month.csv", work / "month.parquet"
    pacsv.write_csv(month, csv, write_options=pacsv.WriteOptions(include_header=False))
    pq.write_table(month, parquet, compression="zstd")
    del month
    blob = clients.storage().bucket(env["LAKE_BUCKET"]).blob("bench/month.parquet")
    blob.upload_from_filename(str(parquet))
    pg_env = {**env, "PG_SCHEMA": "bench_floor"}
    copy = spawn.run("pg_copy", {**base, "env": pg_env, "csv": str(csv)}, work)
    load = spawn.run("bq_load", {**base, "env": env, "uri": f"gs://{env['LAKE_BUCKET']}/bench/month.parquet"}, work)
    blob.delete()
    csv.unlink()
    parquet.unlink()
    rows = sum(expected.values())
    if not copy["rows_out"] == load["rows_out"] == rows == split["rows_out"]:
        raise RuntimeError(
            f"the floor's steps disagree: split {split['rows_out']}, copy {copy['rows_out']}, "
            f"load {load['rows_out']}, files {rows}"
        )
    return {
        "split": split,
        "pg_copy": copy,
        "bq_load": load,
        "expected": expected,
        "wall": split["wall"] + copy["wall"] + load["wall"],
    }


def run(
    source: Path, service: str, work: Path, tlc_url: str, port_base: int, year: int | None, cost: bool = False
) -> dict[str, Any]:
    """The floor, the month's backfill twice, and optionally a year's backfill; every figure.
    cost: also the cost model's inputs of the first backfill (bench/cost_measure.py)."""
    template = (
        tlc_url
        + "/{service}/{service}_tripdata_{year}-{month:02d}."
        + ("parquet" if source.suffix == ".parquet" else "csv.gz")
    )
    start, end = dt.date(2021, 1, 1), dt.date(2021, 1, 31)
    with throwaway_stack(work, port_base, {"SOURCE_URL_TEMPLATE": template}) as env:
        state = Path(env["TAXI_STATE_DIR"])
        dest = Destinations(env, service)
        result: dict[str, Any] = {"floor": floor(env, source, service, work)}
        print("  stack: floor done", flush=True, file=sys.stderr)

        cpu_before = cost_measure.cpu_by_function(state) if cost else {}
        since, published_at = time.monotonic(), dt.datetime.now(dt.UTC)
        publish(env, "BACKFILL_TOPIC", {"start": start.isoformat(), "end": end.isoformat(), "service": service})
        first = wait_complete(dest, start, end, result["floor"]["expected"], since)
        result["backfill"] = {
            **{k: v for k, v in first.items() if k != "generations"},
            **log_counts(state),
            "timeline": timeline(dest, start, end, published_at),
        }
        print(f"  stack: backfill of {start:%Y-%m} done", flush=True, file=sys.stderr)
        if cost:
            result["cost_inputs"] = cost_measure.collect(dest, env, state, cpu_before)

        outcomes = log_counts(state)["ingest_outcomes"]
        publish(env, "BACKFILL_TOPIC", {"start": start.isoformat(), "end": end.isoformat(), "service": service})
        wait_ingest_outcomes(state, outcomes + len(first["generations"]))
        again = dest.lake(start, end)
        rewritten = sorted(d for d, (_, gen) in again.items() if gen != first["generations"][d])
        result["again"] = {"rewritten": rewritten, **log_counts(state)}
        if rewritten:
            raise RuntimeError(f"the repeated backfill rewrote {rewritten}")

        if year is not None:
            y_start, y_end = dt.date(year, 1, 1), dt.date(year, 12, 31)
            since = time.monotonic()
            publish(env, "BACKFILL_TOPIC", {"start": y_start.isoformat(), "end": y_end.isoformat(), "service": service})
            done = wait_complete(dest, y_start, y_end, None, since)
            result["year"] = {
                "year": year,
                **{k: v for k, v in done.items() if k != "generations"},
                **log_counts(state),
            }
            print(f"  stack: backfill of {year} done", flush=True, file=sys.stderr)
    return result
