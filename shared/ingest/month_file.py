"""Reading a TLC month file (CSV, CSV.gz or parquet) as Arrow batches, and what can go wrong.

Why its own module: the typed CSV reader is fast but all-or-nothing, so the month split may
read a file twice (`TypedReadFailed`, then `as_text`); rows with the wrong number of fields
are set aside rather than failing the file (`Malformed`); and pyarrow reads ahead on its own
threads, so a file is only ever lent to a reader (`Lent`). Only an empty cell is null.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from isal import igzip

from shared.core.errors import SourceError
from shared.ingest.cleaning import csv_column_types, map_columns

# Memory bound, measured with `python -m bench` on a full month: larger CSV blocks buy no
# speed but cost RSS (16 MiB blocks: ~470 MB peak with a 400k-row flush threshold).
CSV_BLOCK = 1 << 20
PARQUET_BATCH = 100_000
PARQUET_BUFFER = 1 << 20
MAX_MALFORMED_KEPT = 10_000

CORRUPT_SOURCE = "corrupt_source"  # the reason of a file that cannot be read as its format


class Malformed:
    """The CSV reader's handler for rows with the wrong number of fields: each is skipped and
    kept verbatim (written beside the month's rejects), up to MAX_MALFORMED_KEPT; past that the
    file is corrupt. Called from the reader's threads, hence the lock."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, row: Any) -> str:
        with self._lock:
            if len(self.lines) >= MAX_MALFORMED_KEPT:
                return "error"
            self.lines.append(row.text)
        return "skip"


class TypedReadFailed(Exception):
    """pyarrow's typed CSV reader met a value it cannot convert; it stops there for good."""


def _is_conversion_error(exc: BaseException) -> bool:
    return isinstance(exc, pa.ArrowInvalid) and "conversion error" in str(exc)


def _typed_batches(reader: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    try:
        yield from reader
    except pa.ArrowInvalid as exc:
        if _is_conversion_error(exc):
            raise TypedReadFailed() from exc
        raise


def open_batches(
    source: BinaryIO | Lent, fmt: str, service: str, as_text: bool = False, malformed: Malformed | None = None
) -> tuple[dict[str, str], Iterator[pa.RecordBatch]]:
    """Open a month file (file-like) -> (column mapping, batches). Bad files raise SourceError.
    as_text: every CSV column read as text, for the converter to judge value by value.
    malformed: collects CSV rows with the wrong number of fields instead of failing on them."""
    try:
        if fmt == "parquet":
            # Pages read as decoded through a small buffer, on this thread: the default reads and
            # decodes a whole row group at once (TLC's fhvhv row groups: ~1 M rows x 24 columns).
            parquet = pq.ParquetFile(source, buffer_size=PARQUET_BUFFER, pre_buffer=False)
            mapping = map_columns(service, parquet.schema_arrow.names)
            return mapping, parquet.iter_batches(batch_size=PARQUET_BATCH, use_threads=False)
        stream = pa.input_stream(_inflated(source) if fmt == "csv.gz" else source)
        types = csv_column_types(service)
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK),
            parse_options=pacsv.ParseOptions(invalid_row_handler=malformed),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in types} if as_text else types,
                # Only an empty cell is null (TLC's own convention): pyarrow's default list would
                # quietly null "n/a", "NULL" or "nan" in a number column, and never say so.
                null_values=[""],
                strings_can_be_null=False,
            ),
        )
        mapping = map_columns(service, reader.schema.names)
        return mapping, reader if as_text else _typed_batches(reader)
    except SourceError:
        raise
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        if _is_conversion_error(exc) and not as_text:
            raise TypedReadFailed() from exc
        raise corrupt(exc) from exc


def _inflated(source: BinaryIO | Lent) -> igzip.IGzipFile:
    """The gzip member(s) of `source`, inflated by ISA-L (python-isal's igzip) rather than zlib.

    Why: decompression was the largest single step of parsing a month (0.28 of 0.87 CPU-seconds
    for the bench's 1.37 M-row month); igzip inflates the same bytes in about a third of the CPU
    (0.09 s), and the CSV reader already reads ahead on its own I/O thread, so a further
    decompression thread (igzip_threaded, rapidgzip) bought nothing on the ingest function's one
    vCPU. Same semantics as gzip: concatenated members, CRC checked."""
    return _Inflated(source)


class _Inflated(igzip.IGzipFile):
    """igzip's reader, with a truncated file an OSError like any other unreadable gzip (igzip,
    like gzip, says EOFError), so the split's one corrupt-source path handles it."""

    def __init__(self, source: BinaryIO | Lent) -> None:
        super().__init__(fileobj=source, mode="rb")

    def read(self, size: int | None = -1) -> bytes:
        try:
            return super().read(-1 if size is None else size)
        except EOFError as exc:
            raise OSError(f"truncated gzip: {exc}") from exc

    def readinto(self, buffer: Any) -> int:
        try:
            return super().readinto(buffer)
        except EOFError as exc:
            raise OSError(f"truncated gzip: {exc}") from exc


def corrupt(exc: BaseException) -> SourceError:
    return SourceError(
        f"source file is corrupt or unreadable: {exc}", reason=CORRUPT_SOURCE, field="source", value=str(exc)[:300]
    )


class Lent(io.RawIOBase):
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
