"""The month split: a month file parsed once into every date's trips and rejects files.

`split_month` streams a month file batch by batch, cleans each batch, sets aside
month-level rejects, and writes every date's trips and rejects as finished
parquet files in one pass. Ingest stages them under `staging/`, so the other
dates of the month are published by copying their bytes: a 31-date backfill of a
month parses the month once, not 31 times.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shared.core.errors import SourceError
from shared.core.schemas import arrow_schema, reject_schema
from shared.ingest.cleaning import MAX_BAD_FLOOR, MAX_BAD_SHARE, MONTH_LEVEL_REASONS, Rules, clean_batch, reason_counts
from shared.ingest.lake_write import COMPRESSION
from shared.ingest.legacy_values import normalise
from shared.ingest.month_file import CORRUPT_SOURCE, Lent, Malformed, TypedReadFailed, corrupt, open_batches
from shared.ingest.split_output import Key, MemoryOutput, SplitOutput

# Memory bound, measured with `python -m bench` on a full month: a larger flush threshold buys
# no speed but costs RSS (with 16 MiB CSV blocks, 400k rows: ~470 MB peak). A 20 M-row, 24-column
# fhvhv month (`--service fhvhv --rows 20000000`): 100k rows peaked at 421 MB, 50k at 337 MB.
FLUSH_ROWS = 50_000  # rows buffered before the oldest date is written out as a row group
WRITE_AHEAD = 2  # flushed tables queued for the parquet writer thread


@dataclass
class DaySplit:
    """One date's share of a month file: what its trips and rejects files hold."""

    rows_written: int
    rows_rejected: int
    rejected_by_reason: dict[str, int]

    @property
    def rows_read(self) -> int:
        return self.rows_written + self.rows_rejected

    def counts(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "rows_written": self.rows_written,
            "rows_rejected": self.rows_rejected,
            "rejected_by_reason": self.rejected_by_reason,
        }


@dataclass
class MonthSplit:
    output: SplitOutput
    source_rows: int = 0
    days: dict[dt.date, DaySplit] = field(default_factory=dict)
    month_rejected_rows: int = 0  # rows of other months, in the (None, "rejects") file
    month_rejected_by_reason: dict[str, int] = field(default_factory=dict)
    bad_values: dict[str, dict[str, Any]] = field(default_factory=dict)  # column -> rows, examples
    malformed: list[str] = field(default_factory=list)  # CSV lines with the wrong number of fields

    def tables(self, day: dt.date | None) -> tuple[pa.Table, pa.Table | None]:
        """Decoded (trips, rejects) of a date, or (None, month rejects): for checks and tests,
        when the output keeps its files in memory."""
        if not isinstance(self.output, MemoryOutput):
            raise TypeError("tables() reads a MemoryOutput; this split streamed its files elsewhere")
        trips, rejects = (self.output.read((day, kind)) for kind in ("trips", "rejects"))
        return (
            pq.read_table(pa.BufferReader(trips)) if trips is not None else None,
            pq.read_table(pa.BufferReader(rejects)) if rejects is not None else None,
        )


class _DayWriters:
    """Per-date parquet writers fed as rows arrive; a date's rows are buffered and written
    oldest-first once FLUSH_ROWS are pending, so memory stays bounded whatever the month's size
    and a date normally becomes a single row group (TLC files arrive nearly in date order).
    Each file streams to the split's output as it grows; nothing is held until the end."""

    def __init__(self, service: str, output: SplitOutput) -> None:
        self.trips_schema, self.rejects_schema = arrow_schema(service), reject_schema(service)
        self.output = output
        self.pending: dict[dt.date, dict[str, list[pa.Table]]] = {}
        self.rows = 0
        self.files: dict[Key, tuple[pq.ParquetWriter, Any]] = {}
        self.counts: dict[dt.date, list[int]] = {}
        self.reasons: dict[dt.date | None, dict[str, int]] = {}
        self.month_rejected = 0
        # Encoding and compressing parquet releases the GIL, and so does an upload: one writer
        # thread does both while this thread parses and cleans the next batches.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-writer")
        self._writing: deque[Future] = deque()

    def add(self, table: pa.Table) -> None:
        """Sets the batch's rows aside by (date, trips or rejects) as slices: a batch of one date
        (most of a TLC file) is kept as it is or split by one filter; any other is reordered once.
        Before, every row was copied three times here (sort, concatenation, filters)."""
        if not table.num_rows:
            return
        rejected = pc.is_valid(table["reject_reason"])
        bounds = pc.min_max(table["pickup_date"])
        if bounds["min"] == bounds["max"]:  # one date: the rows as they are, or split by one filter each
            day = bounds["min"].as_py()
            if not pc.any(rejected).as_py():
                self._set_aside(day, "trips", table)
            else:
                self._set_aside(day, "trips", table.filter(pc.invert(rejected)))
                self._set_aside(day, "rejects", table.filter(rejected))
        else:
            keys = pa.table({"day": table["pickup_date"], "rejected": rejected})
            order = pc.sort_indices(keys, sort_keys=[("day", "ascending"), ("rejected", "ascending")])
            table, keys = table.take(order), keys.take(order)
            days, flags = keys["day"].combine_chunks(), keys["rejected"].combine_chunks()
            n = len(days)
            changed = pc.or_(
                pc.not_equal(days.slice(1), days.slice(0, n - 1)), pc.not_equal(flags.slice(1), flags.slice(0, n - 1))
            )
            starts = [0, *(i + 1 for i in pc.indices_nonzero(changed).to_pylist()), n]
            for start, end in itertools.pairwise(starts):
                kind = "rejects" if flags[start].as_py() else "trips"
                self._set_aside(days[start].as_py(), kind, table.slice(start, end - start))
        self.rows += table.num_rows
        while self.rows > FLUSH_ROWS:
            self.flush(min(self.pending))

    def _set_aside(self, day: dt.date, kind: str, rows: pa.Table) -> None:
        self.pending.setdefault(day, {"trips": [], "rejects": []})[kind].append(rows)

    def add_month_rejects(self, table: pa.Table) -> None:
        """Rows that belong to no date of this month (another month's pickups)."""
        self.month_rejected += table.num_rows
        self._count_reasons(None, table)
        self._submit((None, "rejects"), table)

    def _submit(self, key: Key, table: pa.Table) -> None:
        while len(self._writing) >= WRITE_AHEAD:  # bounds the tables waiting to be written
            self._writing.popleft().result()
        self._writing.append(self._thread.submit(self._write, key, table))

    def _drain(self) -> None:
        while self._writing:
            self._writing.popleft().result()

    def _write(self, key: Key, table: pa.Table) -> None:  # on the writer thread only
        if key not in self.files:
            handle = self.output.open(key)
            schema = self.trips_schema if key[1] == "trips" else self.rejects_schema
            self.files[key] = (pq.ParquetWriter(handle, schema, compression=COMPRESSION), handle)
        self.files[key][0].write_table(table, row_group_size=max(table.num_rows, 1))

    def _count_reasons(self, day: dt.date | None, rejects: pa.Table) -> None:
        reasons = self.reasons.setdefault(day, {})
        for reason, count in reason_counts(rejects["reject_reason"]).items():
            reasons[reason] = reasons.get(reason, 0) + count

    def flush(self, day: dt.date) -> None:
        """Writes the date's pending rows as one row group per file, from the slices as they are
        (the parquet writer reads chunked columns; no concatenated copy)."""
        parts = self.pending.pop(day)
        trips = pa.concat_tables(parts["trips"]).drop_columns(["reject_reason"]) if parts["trips"] else None
        rejects = pa.concat_tables(parts["rejects"]) if parts["rejects"] else None
        counts = self.counts.setdefault(day, [0, 0])
        for index, rows in enumerate((trips, rejects)):
            if rows is not None:
                self.rows -= rows.num_rows
                counts[index] += rows.num_rows
        if trips is not None and trips.num_rows:
            self._submit((day, "trips"), trips)
        if rejects is not None and rejects.num_rows:
            self._submit((day, "rejects"), rejects)
            self._count_reasons(day, rejects)

    def close(self, days: list[dt.date]) -> dict[dt.date, DaySplit]:
        """Finish every file; a date without rows gets an empty trips file. The files are
        committed in parallel: for a bucket, each commit is an upload's last request."""
        for day in sorted(self.pending):
            self.flush(day)
        self._drain()  # self.files is the writer thread's until drained
        for day in days:
            if (day, "trips") not in self.files:
                self._submit((day, "trips"), self.trips_schema.empty_table())
        self._drain()
        self._thread.shutdown()

        def commit(key: Key) -> None:
            writer, handle = self.files[key]
            writer.close()
            self.output.commit(key, handle)

        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="split-commit") as pool:
            list(pool.map(commit, list(self.files)))
        self.files.clear()
        out = {}
        for day in days:
            written, rejected = self.counts.get(day, [0, 0])
            out[day] = DaySplit(written, rejected, self.reasons.get(day, {}))
        return out

    def abort(self) -> None:
        for future in self._writing:
            future.cancel()
        self._thread.shutdown(wait=True)
        for key, (writer, handle) in self.files.items():
            try:  # closed now, or its finalizer would write a footer into an aborted file later
                writer.close()
            except Exception:  # noqa: BLE001 - the file is being dropped anyway
                pass
            self.output.abort(key, handle)
        self.files.clear()


def _check_malformed(split: MonthSplit) -> None:
    """A few malformed lines are rows to set aside; many mean the file is not what it claims."""
    lines = len(split.malformed)
    if lines > max(MAX_BAD_FLOOR, MAX_BAD_SHARE * (split.source_rows + lines)):
        raise SourceError(
            f"{lines} CSV rows have the wrong number of fields (more than {MAX_BAD_SHARE:.0%})",
            reason=CORRUPT_SOURCE,
            field="rows",
            value=split.malformed[0][:200],
        )


def month_days(year: int, month: int) -> list[dt.date]:
    first = dt.date(year, month, 1)
    following = dt.date(year + month // 12, month % 12 + 1, 1)
    return [first + dt.timedelta(days=i) for i in range((following - first).days)]


def split_month(
    source: BinaryIO, fmt: str, service: str, year: int, month: int, rules: Rules, output: SplitOutput | None = None
) -> MonthSplit:
    """Parse a month file once into daily trips/rejects parquet files plus the month-level
    rejects, streamed to `output` (default: in memory). Memory: the CSV reader's blocks,
    FLUSH_ROWS decoded rows and what the output buffers per open file, whatever the month's size.

    A CSV value the typed reader cannot parse stops that reader for good, so such a file is
    read a second time with every column as text, and the converter rejects only the rows
    that hold such values (`bad_value`). Clean files, nearly all, are read once."""
    output = output if output is not None else MemoryOutput()
    if fmt == "parquet":  # typed by its writer: bad values surface in the converter, in one pass
        return _split_month(source, fmt, service, year, month, rules, output, as_text=False)
    lent = Lent(source)
    try:
        return _split_month(lent, fmt, service, year, month, rules, output, as_text=False)
    except TypedReadFailed as failed:
        lent.give_back()
        try:
            source.seek(0)
        except (OSError, ValueError, AttributeError) as exc:  # not seekable: the typed reader's error stands
            raise corrupt(failed.__cause__ or failed) from exc
        return _split_month(Lent(source), fmt, service, year, month, rules, output, as_text=True)


def _split_month(
    source: BinaryIO | Lent,
    fmt: str,
    service: str,
    year: int,
    month: int,
    rules: Rules,
    output: SplitOutput,
    as_text: bool,
) -> MonthSplit:
    split = MonthSplit(output)
    writers = _DayWriters(service, output)
    malformed = Malformed()
    try:
        mapping, batches = open_batches(source, fmt, service, as_text, malformed)
        for batch in batches:
            batch = normalise(batch, mapping)  # 2009-2010 words -> codes (shared/ingest/legacy_values.py)
            clean = clean_batch(batch, service, mapping, year, month, rules, split.bad_values)
            split.source_rows += batch.num_rows
            month_level = pc.fill_null(pc.is_in(clean["reject_reason"], pa.array(MONTH_LEVEL_REASONS)), False)
            if pc.any(month_level).as_py():
                writers.add_month_rejects(clean.filter(month_level))
                clean = clean.filter(pc.invert(month_level))
            writers.add(clean)
        split.malformed = malformed.lines
        _check_malformed(split)  # before anything is committed: a corrupt file leaves no files
        split.days = writers.close(month_days(year, month))
        split.month_rejected_rows = writers.month_rejected
        split.month_rejected_by_reason = writers.reasons.get(None, {})
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        writers.abort()
        if type(exc).__module__.startswith(("google", "requests", "urllib3")):
            raise  # a storage/network fault while reading: transient, classified at the boundary
        raise corrupt(exc) from exc
    except BaseException:  # SourceError, TypedReadFailed, anything: stop the writer thread first
        writers.abort()
        raise
    return split
