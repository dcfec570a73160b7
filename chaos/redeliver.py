"""What a durable Pub/Sub would have delivered: published again after the emulator restarts.

Why: the emulator keeps messages in memory only, so a restart loses what it held; Google's
Pub/Sub would have kept and delivered them. To compare a faulty run with the clean one, the
harness publishes again what the restart lost (counted apart in the report, never as a repair
the pipeline made itself): ingest messages with no outcome after them, backfills that never
ran, and the finalize notifications of trips objects that no loader recorded as loaded.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from chaos import observe
from chaos.workload import Workload

LOADERS = ("load_bigquery", "load_postgres")


def republish_lost(
    restart: dt.datetime,
    workload: Workload,
    publisher: observe.Publisher,
    published: list[tuple[dt.datetime, Any]],
    bucket: Any,
) -> int:
    """After a Pub/Sub restart at `restart`: publish again each date whose last message (ours,
    or a backfill's, by its `queued` record) has no outcome recorded after it, or whose ingest
    is still running or retrying (its message died with the emulator); and each backfill of
    ours whose range shows no record since it was published (it never ran)."""
    records = observe.ledger_records(bucket, workload.months)
    last_asked: dict[tuple[str, dt.date], dt.datetime] = {}
    for when, message in published:
        if message.topic == "ingest" and when <= restart:
            key = (message.body["service"], dt.date.fromisoformat(message.body["date"]))
            last_asked[key] = max(when, last_asked.get(key, when))
    latest_ingest: dict[tuple[str, dt.date], Any] = {}
    for service, day, record in records:
        key = (service, day)
        if record.outcome == "queued":
            if record.updated_at and record.updated_at <= restart:
                last_asked[key] = max(record.updated_at, last_asked.get(key, record.updated_at))
        elif record.function == "ingest":
            held = latest_ingest.get(key)
            if held is None or (record.updated_at or restart) > (held.updated_at or restart):
                latest_ingest[key] = record
    again = set()
    for key, asked in last_asked.items():
        latest = latest_ingest.get(key)
        if (
            latest is None
            or latest.updated_at is None
            or latest.updated_at < asked
            or latest.outcome not in observe.TERMINAL
        ):
            again.add(key)
    for service, day in sorted(again):
        publisher.publish("ingest", {"date": day.isoformat(), "service": service})
    count = len(again)
    for when, message in published:
        if message.topic != "backfill" or when > restart:
            continue
        start, end = (dt.date.fromisoformat(message.body[k]) for k in ("start", "end"))
        seen = any(
            s == message.body["service"] and start <= d <= end and r.updated_at and r.updated_at >= when
            for s, d, r in records
        )
        if not seen:
            publisher.publish("backfill", message.body)
            count += 1
    return count


def renotify_lost(workload: Workload, publisher: observe.Publisher, bucket: Any) -> int:
    """After a Pub/Sub restart: the finalize notification again for each of the workload's trips
    objects whose live generation is not recorded as loaded by both loaders (it may have sat in
    the emulator's lake-events backlog); a duplicate only makes a loader replace the day again."""
    from shared.core import ledger_record, paths

    wanted = set(workload.dates)
    loaded = {
        (s, d, r.function, r.generation)
        for s, d, r in observe.ledger_records(bucket, workload.months)
        if r.outcome in (ledger_record.SUCCEEDED, ledger_record.SKIPPED)
    }
    count = 0
    for blob in bucket.list_blobs(prefix="trips/"):
        partition = paths.parse_partition(blob.name)
        if partition is None or partition.kind != "trips" or (partition.service, partition.date) not in wanted:
            continue
        if any((partition.service, partition.date, loader, blob.generation) not in loaded for loader in LOADERS):
            publisher.publish_notification(blob)
            count += 1
    return count
