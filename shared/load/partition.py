"""What both loaders share: event -> partition, staleness, the exact generation's rows.

A finalize event names one generation of one object. The loaders act on that
generation only:
- objects outside `trips/`, events that are not a finalize and objects of another
  bucket are ignored (INFO): the deployed notification and the local
  fake-gcs-server notify trips/ only, but a replayed or hand-made event may name
  anything, and fake-gcs-server notifies for every bucket of the emulator;
- a name under `trips/` that is not a partition (`pickup_date=2021-13-01`, an
  unknown service, `other.parquet`) is bad input: dead-lettered, naming it;
- an event whose generation is no longer the live one is stale: a newer version
  has its own event, so loading the old bytes would only regress the
  destination. It is skipped (INFO). An event for an object that does not exist
  at all is dead-lettered (`object_not_found`): nothing in the pipeline deletes a
  partition, so the event is wrong or a person deleted the day, and either way
  somebody must look;
- otherwise exactly that generation is read (`generation=` on the download; a
  replace between the check and the read shows up as 404 = stale too), decoded
  and checked against the one schema in `shared/core/schemas.py`. A corrupt file or
  a schema mismatch is a PermanentError: it is dead-lettered, and the previous
  contents of the day stay in place because nothing was written yet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from google.api_core.exceptions import NotFound

from shared.core import clients, ledger, logs, paths
from shared.core.errors import SourceError, ValidationError, classify
from shared.core.events import ObjectEvent, object_event
from shared.core.evolved_columns import extra_fields
from shared.core.schemas import arrow_schema
from shared.core.settings import Settings


@dataclass(frozen=True)
class PartitionLoad:
    """One generation of one daily partition, as named by a finalize event."""

    event: ObjectEvent
    partition: paths.Partition

    @property
    def service(self) -> str:
        return self.partition.service

    @property
    def date(self) -> dt.date:
        return self.partition.date

    @property
    def generation(self) -> int:
        return self.event.generation

    @property
    def uri(self) -> str:
        return f"gs://{self.event.bucket}/{self.event.name}"

    def fields(self) -> dict[str, Any]:
        """Outcome/log/dead-letter context: what was being processed."""
        return {
            "service": self.service,
            "date": self.date.isoformat(),
            "object": self.uri,
            "generation": self.generation,
        }


@dataclass(frozen=True)
class PartitionData:
    table: pa.Table  # checked: exact trips schema, every row of the partition's date
    parquet: bytes  # the generation's bytes, as read (a loader may ship them as they are)


def resolve(cloud_event: Any, settings: Settings) -> tuple[PartitionLoad | None, dict[str, Any]]:
    """CloudEvent -> (partition load, {}) or (None, outcome fields saying why it is ignored)."""
    event = object_event(cloud_event)
    attributes = cloud_event.get_attributes() if hasattr(cloud_event, "get_attributes") else {}
    if event is None:
        return None, {
            "message": "event ignored: not an object finalize",
            "ignored": "not_finalize",
            "event_type": attributes.get("type"),
        }
    where = {"object": f"gs://{event.bucket}/{event.name}", "generation": event.generation}
    if event.bucket != settings.lake_bucket:
        return None, {"message": "event ignored: object of another bucket", "ignored": "other_bucket", **where}
    partition = paths.parse_partition(event.name)
    if partition is not None and partition.kind == "trips":
        return PartitionLoad(event, partition), {}
    if event.name.startswith("trips/"):
        # Only data.parquet partitions live under trips/ (the loaders' namespace): anything else
        # there (a 13th month, an unknown service, another file name) was put by mistake, and a
        # person must hear of it rather than find the day silently not loaded.
        raise ValidationError(
            "not a trips partition name: trips/{service}/pickup_date=YYYY-MM-DD/data.parquet, "
            "with a known service and a real date",
            field="name",
            value=event.name,
        )
    return None, {"message": "event ignored: not a trips/ partition", "ignored": "not_trips", **where}


def live_generation(bucket: Any, name: str) -> int | None:
    blob = bucket.get_blob(name)
    return None if blob is None else int(blob.generation)


def stale_reason(load: PartitionLoad, live: int | None) -> str | None:
    """Why this event's generation must not be loaded, or None when it is the live one."""
    if live is None:
        return "object deleted since the event"
    if live != load.generation:
        return f"object replaced since the event (live generation {live})"
    return None


def decode(load: PartitionLoad, data: bytes) -> pa.Table:
    """Parquet bytes -> the checked table; anything unreadable or off-schema is permanent."""
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(
            f"partition parquet is corrupt or unreadable: {exc}",
            reason="corrupt_parquet",
            field="object",
            value=load.uri,
        ) from exc
    declared = arrow_schema(load.service)
    actual = pa.schema([pa.field(f.name, f.type) for f in table.schema])  # metadata/nullability aside
    try:  # the declared columns, then only what the schema contract added (safe names, known types)
        extras = extra_fields(table.schema, load.service)
    except SourceError as exc:
        head_fits = pa.schema(list(actual)[: len(declared)]).equals(declared)
        raise SourceError(
            "partition schema does not match the trips schema",
            reason="schema_mismatch",
            field="schema",
            value=exc.value if head_fits else _schema_diff(actual, declared),
        ) from None
    expected = pa.schema([*declared, *extras])
    if table.num_rows:
        dates = pc.unique(table["pickup_date"])
        if len(dates) != 1 or dates[0].as_py() != load.date:
            raise SourceError(
                "partition holds rows of other dates",
                reason="date_mismatch",
                field="pickup_date",
                value=str(dates.to_pylist()[:5]),
            )
    return table.cast(expected)  # the added fields keep their metadata: where they came from


def _schema_diff(actual: pa.Schema, expected: pa.Schema) -> str:
    have = {f.name: str(f.type) for f in actual}
    want = {f.name: str(f.type) for f in expected}
    parts = [f"missing {sorted(set(want) - set(have))}"] if set(want) - set(have) else []
    if set(have) - set(want):
        parts.append(f"unexpected {sorted(set(have) - set(want))}")
    parts += [f"{n}: {have[n]} != {want[n]}" for n in want if n in have and have[n] != want[n]]
    if not parts and actual.names != expected.names:
        parts.append("column order differs")
    return "; ".join(parts)[:300]


def read_generation(bucket: Any, load: PartitionLoad) -> bytes | None:
    """The bytes of exactly the event's generation; None if that generation is gone."""
    try:
        return bucket.blob(load.event.name, generation=load.generation).download_as_bytes()
    except NotFound:
        return None


Loader = Callable[[PartitionLoad, PartitionData, Settings, dict[str, float]], Mapping[str, Any]]


def run_load(cloud_event: Any, settings: Settings, loader: Loader) -> dict[str, Any]:
    """The common driver: resolve, skip stale, read and check, then `loader` replaces the day.

    Errors leave with the partition as context, so the one failure log and the
    dead letter say which service, date and generation failed.
    """
    load, ignored = resolve(cloud_event, settings)
    if load is None:
        return ignored  # names no date: no run ledger record
    ledger.started(load.service, load.date)
    timings: dict[str, float] = {}
    try:
        bucket = clients.storage().bucket(settings.lake_bucket)
        with logs.timed(timings, "read_seconds"):
            live = live_generation(bucket, load.event.name)
            reason = stale_reason(load, live)
            data = None if reason else read_generation(bucket, load)
            if reason is None and data is None:
                reason = "object replaced or deleted since the event"
        if live is None:
            # Nothing in the pipeline deletes a trips/ partition: an event for an object that does not
            # exist names the wrong object (or a person deleted the day), never a routine late event.
            raise SourceError(
                "the event names a partition object that does not exist",
                reason="object_not_found",
                field="name",
                value=load.event.name,
                generation=load.generation,
            )
        if reason or data is None:  # data is None only with a reason (set above)
            return {**load.fields(), "message": f"stale event skipped: {reason}", "skipped": "stale", "rows": 0}
        with logs.timed(timings, "decode_seconds"):
            table = decode(load, data)
        result = dict(loader(load, PartitionData(table, data), settings, timings))
    except Exception as exc:
        error = classify(exc)
        error.details.setdefault("context", load.fields())
        if error is exc:
            raise
        raise error from exc
    return {**load.fields(), "rows": table.num_rows, **timings, **result}
