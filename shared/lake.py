"""Parquet in and out of the lake bucket, and the month split that makes daily extraction cheap.

A month file is parsed once: `split_month` streams it batch by batch, cleans each
batch, sets aside month-level rejects, and writes the rest as a staging parquet
sorted by pickup date with one row group per date (while the data arrives in
date order, as TLC files nearly do). `extract_day` then reads only the row
groups whose statistics cover the date. A 31-date backfill of a month parses the
month once, not 31 times.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterator, Mapping

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from shared.cleaning import MONTH_LEVEL_REASONS, Rules, clean_batch, csv_column_types, map_columns
from shared.errors import SourceError
from shared.schemas import reject_schema

COMPRESSION = "zstd"
CSV_BLOCK = 16 << 20
PARQUET_BATCH = 200_000
FLUSH_ROWS = 400_000  # rows buffered before the oldest date is written out as a row group


def parquet_bytes(table: pa.Table) -> pa.Buffer:
    """zstd parquet, one row group for the whole table (a day fits comfortably)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=COMPRESSION, row_group_size=max(table.num_rows, 1))
    return sink.getvalue()


def upload_parquet(bucket: Any, name: str, table: pa.Table, metadata: Mapping[str, Any],
                   if_generation_match: int | None = None) -> Any:
    blob = bucket.blob(name)
    blob.metadata = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in metadata.items()}
    blob.upload_from_string(parquet_bytes(table).to_pybytes(), content_type="application/vnd.apache.parquet",
                            if_generation_match=if_generation_match)
    return blob


def iter_source_batches(source: BinaryIO, fmt: str, service: str) -> tuple[dict[str, str], Iterator[pa.RecordBatch]]:
    """Open a month file (file-like) -> (column mapping, batches). Bad files raise SourceError."""
    try:
        if fmt == "parquet":
            parquet = pq.ParquetFile(source)
            mapping = map_columns(service, parquet.schema_arrow.names)
            return mapping, parquet.iter_batches(batch_size=PARQUET_BATCH)
        stream = pa.input_stream(source, compression="gzip" if fmt == "csv.gz" else None)
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK),
            convert_options=pacsv.ConvertOptions(column_types=csv_column_types(service), strings_can_be_null=False),
        )
        mapping = map_columns(service, reader.schema.names)
        return mapping, iter(reader)
    except SourceError:
        raise
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise _corrupt(exc) from exc


def _corrupt(exc: BaseException) -> SourceError:
    return SourceError(f"source file is corrupt or unreadable: {exc}", reason="corrupt_source",
                       field="source", value=str(exc)[:300])


@dataclass
class MonthSplit:
    source_rows: int = 0
    day_rows: dict[dt.date, int] = field(default_factory=dict)
    month_rejects: list[pa.Table] = field(default_factory=list)

    @property
    def month_rejects_table(self) -> pa.Table | None:
        return pa.concat_tables(self.month_rejects) if self.month_rejects else None

    @property
    def month_rejected_rows(self) -> int:
        return sum(t.num_rows for t in self.month_rejects)


class _DayBuffer:
    """Rows per date, flushed oldest-first as row groups once FLUSH_ROWS are buffered."""

    def __init__(self, writer: pq.ParquetWriter, split: MonthSplit) -> None:
        self.writer, self.split = writer, split
        self.pending: dict[dt.date, list[pa.Table]] = {}
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        table = table.take(pc.sort_indices(table["pickup_date"]))
        offset = 0
        counts = pc.value_counts(table["pickup_date"]) if table.num_rows else []
        for item in counts:
            day, count = item["values"].as_py(), item["counts"].as_py()
            self.pending.setdefault(day, []).append(table.slice(offset, count))
            self.split.day_rows[day] = self.split.day_rows.get(day, 0) + count
            offset += count
        self.rows += table.num_rows
        while self.rows > FLUSH_ROWS:
            self.flush(min(self.pending))

    def flush(self, day: dt.date) -> None:
        tables = self.pending.pop(day)
        group = pa.concat_tables(tables).combine_chunks()
        self.writer.write_table(group, row_group_size=group.num_rows)
        self.rows -= group.num_rows

    def close(self) -> None:
        for day in sorted(self.pending):
            self.flush(day)


def split_month(source: BinaryIO, fmt: str, service: str, year: int, month: int, rules: Rules,
                sink: Any) -> MonthSplit:
    """Parse a month file once into `sink` (staging parquet); month-level rejects are returned."""
    split = MonthSplit()
    mapping, batches = iter_source_batches(source, fmt, service)
    writer = pq.ParquetWriter(sink, reject_schema(service), compression=COMPRESSION)
    buffer = _DayBuffer(writer, split)
    try:
        for batch in batches:
            clean = clean_batch(batch, service, mapping, year, month, rules)
            split.source_rows += batch.num_rows
            month_level = pc.fill_null(pc.is_in(clean["reject_reason"], pa.array(MONTH_LEVEL_REASONS)), False)
            if pc.any(month_level).as_py():
                split.month_rejects.append(clean.filter(month_level))
                clean = clean.filter(pc.invert(month_level))
            buffer.add(clean)
        buffer.close()
    except SourceError:
        raise
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        if type(exc).__module__.startswith(("google", "requests", "urllib3")):
            raise  # a storage/network fault while reading: transient, classified at the boundary
        raise _corrupt(exc) from exc
    finally:
        writer.close()
    return split


def extract_day(staging: pq.ParquetFile, day: dt.date) -> tuple[pa.Table, pa.Table]:
    """Rows of `day` from the staging file -> (trips, rejects); reads only matching row groups."""
    column = staging.schema_arrow.get_field_index("pickup_date")
    groups = []
    for index in range(staging.metadata.num_row_groups):
        stats = staging.metadata.row_group(index).column(column).statistics
        if stats is None or not stats.has_min_max or stats.min <= day <= stats.max:
            groups.append(index)
    table = staging.read_row_groups(groups) if groups else staging.schema_arrow.empty_table()
    table = table.filter(pc.equal(table["pickup_date"], pa.scalar(day, pa.date32())))
    rejected = pc.is_valid(table["reject_reason"])
    trips = table.filter(pc.invert(rejected)).drop_columns(["reject_reason"])
    return trips.combine_chunks(), table.filter(rejected).combine_chunks()
