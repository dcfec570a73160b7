"""Parquet in and out of the lake bucket, and the month split that parses a month file once.

`split_month` streams a month file batch by batch, cleans each batch, sets aside
month-level rejects, and writes every date's trips and rejects as finished
parquet files in one pass. Ingest stages them under `staging/`, so the other
dates of the month are published by copying their bytes: a 31-date backfill of a
month parses the month once, not 31 times.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterator, Mapping

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from shared.cleaning import MONTH_LEVEL_REASONS, Rules, clean_batch, csv_column_types, map_columns, reason_counts
from shared.errors import SourceError
from shared.schemas import arrow_schema, reject_schema

COMPRESSION = "zstd"
PARQUET_TYPE = "application/vnd.apache.parquet"
# Memory bounds, measured with `python -m bench` on a full month: larger CSV blocks
# and flush thresholds buy no speed but cost RSS (16 MiB blocks + 400k rows: ~470 MB peak).
CSV_BLOCK = 1 << 20
PARQUET_BATCH = 100_000
FLUSH_ROWS = 100_000  # rows buffered before the oldest date is written out as a row group
WRITE_AHEAD = 2  # flushed tables queued for the parquet writer thread


def parquet_bytes(table: pa.Table) -> pa.Buffer:
    """zstd parquet, one row group for the whole table (a day fits comfortably)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=COMPRESSION, row_group_size=max(table.num_rows, 1))
    return sink.getvalue()


def upload_bytes(bucket: Any, name: str, data: bytes | pa.Buffer, metadata: Mapping[str, Any] | None = None,
                 if_generation_match: int | None = None) -> Any:
    """Upload finished parquet bytes; metadata values that are not strings are stored as JSON."""
    blob = bucket.blob(name)
    blob.metadata = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in (metadata or {}).items()} or None
    payload = data.to_pybytes() if isinstance(data, pa.Buffer) else data
    blob.upload_from_string(payload, content_type=PARQUET_TYPE, if_generation_match=if_generation_match)
    return blob


def upload_parquet(bucket: Any, name: str, table: pa.Table, metadata: Mapping[str, Any],
                   if_generation_match: int | None = None) -> Any:
    return upload_bytes(bucket, name, parquet_bytes(table), metadata, if_generation_match)


class _TypedReadFailed(Exception):
    """pyarrow's typed CSV reader met a value it cannot convert; it stops there for good."""


def _is_conversion_error(exc: BaseException) -> bool:
    return isinstance(exc, pa.ArrowInvalid) and "conversion error" in str(exc)


def _typed_batches(reader: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    try:
        yield from reader
    except pa.ArrowInvalid as exc:
        if _is_conversion_error(exc):
            raise _TypedReadFailed() from exc
        raise


def iter_source_batches(source: BinaryIO, fmt: str, service: str,
                        as_text: bool = False) -> tuple[dict[str, str], Iterator[pa.RecordBatch]]:
    """Open a month file (file-like) -> (column mapping, batches). Bad files raise SourceError.
    as_text: every CSV column read as text, for the converter to judge value by value."""
    try:
        if fmt == "parquet":
            parquet = pq.ParquetFile(source)
            mapping = map_columns(service, parquet.schema_arrow.names)
            return mapping, parquet.iter_batches(batch_size=PARQUET_BATCH)
        stream = pa.input_stream(source, compression="gzip" if fmt == "csv.gz" else None)
        types = csv_column_types(service)
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in types} if as_text else types,
                # Only an empty cell is null (TLC's own convention): pyarrow's default list would
                # quietly null "n/a", "NULL" or "nan" in a number column, and never say so.
                null_values=[""], strings_can_be_null=False),
        )
        mapping = map_columns(service, reader.schema.names)
        return mapping, reader if as_text else _typed_batches(reader)
    except SourceError:
        raise
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        if _is_conversion_error(exc) and not as_text:
            raise _TypedReadFailed() from exc
        raise _corrupt(exc) from exc


def _corrupt(exc: BaseException) -> SourceError:
    return SourceError(f"source file is corrupt or unreadable: {exc}", reason="corrupt_source",
                       field="source", value=str(exc)[:300])


@dataclass
class DaySplit:
    """One date's share of a month file: its trips and rejects as finished parquet bytes."""

    trips: pa.Buffer
    rejects: pa.Buffer | None
    rows_written: int
    rows_rejected: int
    rejected_by_reason: dict[str, int]

    @property
    def rows_read(self) -> int:
        return self.rows_written + self.rows_rejected

    def counts(self) -> dict[str, Any]:
        return {"rows_read": self.rows_read, "rows_written": self.rows_written,
                "rows_rejected": self.rows_rejected, "rejected_by_reason": self.rejected_by_reason}


@dataclass
class MonthSplit:
    source_rows: int = 0
    days: dict[dt.date, DaySplit] = field(default_factory=dict)
    month_rejects: list[pa.Table] = field(default_factory=list)
    bad_values: dict[str, dict[str, Any]] = field(default_factory=dict)  # column -> rows, examples

    @property
    def month_rejects_table(self) -> pa.Table | None:
        return pa.concat_tables(self.month_rejects) if self.month_rejects else None

    @property
    def month_rejected_rows(self) -> int:
        return sum(t.num_rows for t in self.month_rejects)

    def tables(self, day: dt.date) -> tuple[pa.Table, pa.Table | None]:
        """Decoded (trips, rejects) of a date: for checks and tests."""
        part = self.days[day]
        trips = pq.read_table(pa.BufferReader(part.trips))
        rejects = pq.read_table(pa.BufferReader(part.rejects)) if part.rejects is not None else None
        return trips, rejects


class _DayWriters:
    """Per-date parquet writers fed as rows arrive; a date's rows are buffered and written
    oldest-first once FLUSH_ROWS are pending, so memory stays bounded whatever the month's size
    and a date normally becomes a single row group (TLC files arrive nearly in date order)."""

    def __init__(self, service: str) -> None:
        self.trips_schema, self.rejects_schema = arrow_schema(service), reject_schema(service)
        self.pending: dict[dt.date, list[pa.Table]] = {}
        self.rows = 0
        self.writers: dict[tuple[dt.date, str], tuple[pq.ParquetWriter, pa.BufferOutputStream]] = {}
        self.counts: dict[dt.date, list[int]] = {}
        self.reasons: dict[dt.date, dict[str, int]] = {}
        # Encoding and compressing parquet releases the GIL: one writer thread does it while this
        # thread parses and cleans the next batches (a second core's worth of the split's time).
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-writer")
        self._writing: deque[Future] = deque()

    def add(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        table = table.take(pc.sort_indices(table["pickup_date"]))
        offset = 0
        for item in pc.value_counts(table["pickup_date"]):
            day, count = item["values"].as_py(), item["counts"].as_py()
            self.pending.setdefault(day, []).append(table.slice(offset, count))
            offset += count
        self.rows += table.num_rows
        while self.rows > FLUSH_ROWS:
            self.flush(min(self.pending))

    def _submit(self, day: dt.date, kind: str, table: pa.Table) -> None:
        while len(self._writing) >= WRITE_AHEAD:  # bounds the tables waiting to be written
            self._writing.popleft().result()
        self._writing.append(self._thread.submit(self._write, day, kind, table))

    def _drain(self) -> None:
        while self._writing:
            self._writing.popleft().result()

    def _write(self, day: dt.date, kind: str, table: pa.Table) -> None:  # on the writer thread only
        key = (day, kind)
        if key not in self.writers:
            sink = pa.BufferOutputStream()
            schema = self.trips_schema if kind == "trips" else self.rejects_schema
            self.writers[key] = (pq.ParquetWriter(sink, schema, compression=COMPRESSION), sink)
        self.writers[key][0].write_table(table, row_group_size=max(table.num_rows, 1))

    def flush(self, day: dt.date) -> None:
        group = pa.concat_tables(self.pending.pop(day)).combine_chunks()
        self.rows -= group.num_rows
        rejected = pc.is_valid(group["reject_reason"])
        trips = group.filter(pc.invert(rejected)).drop_columns(["reject_reason"])
        rejects = group.filter(rejected)
        counts = self.counts.setdefault(day, [0, 0])
        counts[0] += trips.num_rows
        counts[1] += rejects.num_rows
        if trips.num_rows:
            self._submit(day, "trips", trips)
        if rejects.num_rows:
            self._submit(day, "rejects", rejects)
            reasons = self.reasons.setdefault(day, {})
            for reason, count in reason_counts(rejects["reject_reason"]).items():
                reasons[reason] = reasons.get(reason, 0) + count

    def close(self, days: list[dt.date]) -> dict[dt.date, DaySplit]:
        """Finish every date of the month; a date without rows gets an empty trips file."""
        for day in sorted(self.pending):
            self.flush(day)
        self._drain()
        self._thread.shutdown()
        out = {}
        for day in days:
            buffers = {}
            for kind in ("trips", "rejects"):
                if (day, kind) in self.writers:
                    writer, sink = self.writers.pop((day, kind))
                    writer.close()
                    buffers[kind] = sink.getvalue()
            trips = buffers.get("trips") or parquet_bytes(self.trips_schema.empty_table())
            written, rejected = self.counts.get(day, [0, 0])
            out[day] = DaySplit(trips, buffers.get("rejects"), written, rejected, self.reasons.get(day, {}))
        return out

    def abort(self) -> None:
        for future in self._writing:
            future.cancel()
        self._thread.shutdown(wait=True)
        for writer, _ in self.writers.values():
            writer.close()


def month_days(year: int, month: int) -> list[dt.date]:
    first = dt.date(year, month, 1)
    following = dt.date(year + month // 12, month % 12 + 1, 1)
    return [first + dt.timedelta(days=i) for i in range((following - first).days)]


class _Lent(io.RawIOBase):
    """The caller's file, lent to one pyarrow reader. pyarrow reads ahead on its own threads and
    goes on reading after its reader has failed; once `give_back()` returns, that reader only
    sees end-of-file, so the caller may seek the file and read it again."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw, self._lock, self._lent = raw, threading.Lock(), True

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with self._lock:
            if not self._lent:
                return 0
            data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def give_back(self) -> None:
        with self._lock:
            self._lent = False

    def close(self) -> None:  # pyarrow closes what it reads from; the file stays the caller's
        self.give_back()
        super().close()


def split_month(source: BinaryIO, fmt: str, service: str, year: int, month: int, rules: Rules) -> MonthSplit:
    """Parse a month file once into finished daily trips/rejects parquet (in memory, compressed)
    plus the month-level rejects. Memory: the compressed month plus FLUSH_ROWS decoded rows.

    A CSV value the typed reader cannot parse stops that reader for good, so such a file is
    read a second time with every column as text, and the converter rejects only the rows
    that hold such values (`bad_value`). Clean files, nearly all, are read once."""
    if fmt == "parquet":  # typed by its writer: bad values surface in the converter, in one pass
        return _split_month(source, fmt, service, year, month, rules, as_text=False)
    lent = _Lent(source)
    try:
        return _split_month(lent, fmt, service, year, month, rules, as_text=False)
    except _TypedReadFailed as failed:
        lent.give_back()
        try:
            source.seek(0)
        except (OSError, ValueError, AttributeError) as exc:  # not seekable: the typed reader's error stands
            raise _corrupt(failed.__cause__ or failed) from exc
        return _split_month(_Lent(source), fmt, service, year, month, rules, as_text=True)


def _split_month(source: BinaryIO, fmt: str, service: str, year: int, month: int, rules: Rules,
                 as_text: bool) -> MonthSplit:
    split = MonthSplit()
    writers = _DayWriters(service)
    try:
        mapping, batches = iter_source_batches(source, fmt, service, as_text)
        for batch in batches:
            clean = clean_batch(batch, service, mapping, year, month, rules, split.bad_values)
            split.source_rows += batch.num_rows
            month_level = pc.fill_null(pc.is_in(clean["reject_reason"], pa.array(MONTH_LEVEL_REASONS)), False)
            if pc.any(month_level).as_py():
                split.month_rejects.append(clean.filter(month_level))
                clean = clean.filter(pc.invert(month_level))
            writers.add(clean)
        split.days = writers.close(month_days(year, month))
    except (SourceError, _TypedReadFailed):
        writers.abort()
        raise
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        writers.abort()
        if type(exc).__module__.startswith(("google", "requests", "urllib3")):
            raise  # a storage/network fault while reading: transient, classified at the boundary
        raise _corrupt(exc) from exc
    return split
