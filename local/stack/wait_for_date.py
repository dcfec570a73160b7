"""Wait until one date is in GCS, BigQuery and Postgres with matching counts; print a summary.

    python -m local.stack.wait_for_date --date 2021-01-15 --service yellow [--since ISO] [--timeout 900]

Used by `./local_emulator.sh run` after it published the date. Done when
`trips/{service}/pickup_date={date}/data.parquet` exists in the lake and both
`{dataset}.{service}_trips` (BigQuery) and `{schema}.{service}_trips` (Postgres) hold as many
rows for that date as the parquet object. Fails early when a dead letter about the date
arrives after --since (read from the keeping subscription, then left there with a nack).
Reads the stack's environment (.state/env).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

DEAD_LETTER_SUBSCRIPTION = "taxi-dead-letter-sub"
POLL_SECONDS = 1.0


@dataclass
class Progress:
    parquet_rows: int | None = None  # None: the object is not there yet
    generation: int | None = None
    metadata: dict = field(default_factory=dict)
    updated: dt.datetime | None = None
    bigquery_rows: int | None = None
    postgres_rows: int | None = None

    def done(self) -> bool:
        return self.parquet_rows is not None and self.bigquery_rows == self.postgres_rows == self.parquet_rows

    def line(self) -> str:
        def show(value):
            return "-" if value is None else f"{value:,}"

        return f"gcs={show(self.parquet_rows)} bigquery={show(self.bigquery_rows)} postgres={show(self.postgres_rows)}"


class Destinations:
    """The three places a date lands, read with the same clients the functions use."""

    def __init__(self, date: dt.date, service: str):
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery, storage

        self.date, self.service = date, service
        project = os.environ["GCP_PROJECT"]
        self.object_name = f"trips/{service}/pickup_date={date.isoformat()}/data.parquet"
        self.bucket = storage.Client(project=project, credentials=AnonymousCredentials()).bucket(
            os.environ["LAKE_BUCKET"]
        )
        self.bq = bigquery.Client(
            project=project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=os.environ["BIGQUERY_EMULATOR_HOST"]),
        )
        self.bq_table = f"{project}.{os.environ.get('BQ_DATASET', 'nyc_taxi')}.{service}_trips"
        self.pg_table = f"{os.environ.get('PG_SCHEMA', 'ny_taxi')}.{service}_trips"
        self._pg: Any = None

    def read_lake(self, progress: Progress) -> None:
        import pyarrow.parquet as pq

        blob = self.bucket.get_blob(self.object_name)
        if blob is None:
            progress.parquet_rows = None
            return
        if blob.generation != progress.generation:  # a new version: count its rows once
            data = blob.download_as_bytes()
            progress.parquet_rows = pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
            progress.generation, progress.metadata, progress.updated = (
                blob.generation,
                blob.metadata or {},
                blob.updated,
            )

    def bigquery_rows(self) -> int | None:
        from google.api_core.exceptions import GoogleAPIError
        from google.cloud import bigquery

        sql = f"SELECT COUNT(*) AS n FROM `{self.bq_table}` WHERE pickup_date = @d"
        config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("d", "DATE", self.date)])
        try:
            return next(iter(self.bq.query(sql, job_config=config).result())).n
        except GoogleAPIError:  # no table yet
            return None

    def postgres_rows(self) -> int | None:
        import pg8000.native

        try:
            if self._pg is None:
                self._pg = pg8000.native.Connection(
                    user=os.environ["PG_USER"],
                    password=os.environ["PG_PASSWORD"],
                    host=os.environ["PG_HOST"],
                    port=int(os.environ["PG_PORT"]),
                    database=os.environ["PG_DATABASE"],
                )
            return self._pg.run(f"SELECT count(*) FROM {self.pg_table} WHERE pickup_date = :d", d=self.date)[0][0]
        except pg8000.native.DatabaseError:  # no table yet (the connection stays usable)
            return None
        except (pg8000.native.InterfaceError, OSError):
            self._pg = None
            return None


class DeadLetters:
    """Dead letters about this date published after `since` (left in the subscription)."""

    def __init__(self, date: str, service: str, since: dt.datetime | None):
        from shared.core.pubsub_clients import subscriber_client

        self.date, self.service, self.since = date, service, since
        self.subscriber = subscriber_client()  # dead letters up to 10 MB (shared/core/pubsub_clients.py)
        self.path = self.subscriber.subscription_path(os.environ["GCP_PROJECT"], DEAD_LETTER_SUBSCRIPTION)

    def find(self) -> list[str]:
        from google.api_core.exceptions import GoogleAPIError

        if self.since is None:
            return []
        try:
            response = self.subscriber.pull(subscription=self.path, max_messages=50, timeout=5)
        except GoogleAPIError:
            return []
        if not response.received_messages:
            return []
        self.subscriber.modify_ack_deadline(
            subscription=self.path, ack_deadline_seconds=0, ack_ids=[m.ack_id for m in response.received_messages]
        )
        found = []
        for received in response.received_messages:
            message = received.message
            text = message.data.decode("utf-8", "replace")
            published = message.publish_time
            if published < self.since or self.date not in text or self.service not in text:
                continue
            found.append(f"{text} {json.dumps(dict(message.attributes))}")
        return found


def wait(args: argparse.Namespace) -> int:
    date = dt.date.fromisoformat(args.date)
    since = dt.datetime.fromisoformat(args.since.replace("Z", "+00:00")) if args.since else None
    where = Destinations(date, args.service)
    dead_letters = DeadLetters(args.date, args.service, since)
    progress, started = Progress(), time.monotonic()
    deadline = started + args.timeout
    tty, last_line, last_state, last_print = sys.stderr.isatty(), "", "", 0.0
    while True:
        where.read_lake(progress)
        progress.bigquery_rows = where.bigquery_rows()
        progress.postgres_rows = where.postgres_rows()
        if progress.done():
            break
        letters = dead_letters.find()
        now = time.monotonic()
        line = f"waiting for {args.service} {args.date}: {progress.line()}  ({now - started:.0f}s of {args.timeout}s)"
        if tty:
            sys.stderr.write("\r" + line.ljust(len(last_line)))
        elif progress.line() != last_state or now - last_print >= 15:
            sys.stderr.write(line + "\n")
            last_print = now
        last_line, last_state = line, progress.line()
        sys.stderr.flush()
        if letters:
            sys.stderr.write(
                "\nfailed: dead letter(s) about this date:\n  " + "\n  ".join(letters) + "\n"
                "logs: ./local_emulator.sh logs ingest (or load_bigquery, load_postgres)\n"
            )
            return 1
        if now >= deadline:
            sys.stderr.write(
                f"\ntimed out after {args.timeout}s: {progress.line()}\n"
                "logs: ./local_emulator.sh logs ingest (or load_bigquery, load_postgres)\n"
            )
            return 1
        time.sleep(POLL_SECONDS)
    if tty:
        sys.stderr.write("\n")
    seconds = (dt.datetime.now(dt.UTC) - since).total_seconds() if since else time.monotonic() - started
    print(summary(where, progress, seconds, since))
    return 0


def summary(where: Destinations, progress: Progress, seconds: float, since: dt.datetime | None) -> str:
    meta = progress.metadata
    reasons = json.loads(meta.get("rejected_by_reason") or "{}")
    by_reason = ", ".join(f"{reason}: {int(count):,}" for reason, count in sorted(reasons.items()))

    def number(key: str) -> str:
        return f"{int(meta[key]):>12,}" if meta.get(key, "").lstrip("-").isdigit() else f"{'?':>12}"

    lines = [
        f"{where.service} {where.date.isoformat()}: in GCS, BigQuery and Postgres "
        f"({seconds:.1f}s {'after the publish' if since else 'of waiting'})",
        f"  rows read      {number('rows_read')}",
        f"  rows rejected  {number('rows_rejected')}" + (f"   ({by_reason})" if by_reason else ""),
        f"  rows written   {number('rows_written')}",
        f"  GCS            {progress.parquet_rows:>12,}   gs://{where.bucket.name}/{where.object_name}",
        f"  BigQuery       {progress.bigquery_rows:>12,}   {where.bq_table}",
        f"  Postgres       {progress.postgres_rows:>12,}   {os.environ['PG_DATABASE']}.{where.pg_table}",
    ]
    if since and progress.updated and progress.updated < since:
        lines.append(
            f"  note: the object was written at {progress.updated:%Y-%m-%d %H:%M:%S} UTC, before this run "
            "(the date was already loaded)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--date", required=True, help="YYYY-MM-DD")
    parser.add_argument("--service", default="yellow")
    parser.add_argument("--since", help="ISO time of the publish: older dead letters are ignored")
    parser.add_argument("--timeout", type=int, default=900, help="seconds")
    return wait(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
