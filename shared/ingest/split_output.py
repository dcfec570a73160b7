"""Where the month split's files go while they are being written.

The split writes up to 63 parquet files at once (trips and rejects of every date, and the
month's out-of-month rows), each growing row group by row group as the month file streams by.
Holding them in memory until the end made ingest's peak grow with the month (about 20 MB per
million rows: 612 MB for a 13 M-row month); streaming each to its destination as it grows
bounds memory by design: a file in a bucket holds at most one upload chunk in memory.

A file is named by a key, `(date, kind)`: `(2021-01-15, "trips")`, `(2021-01-15, "rejects")`,
and `(None, "rejects")` for the month's own rejects. Three outputs:
- `MemoryOutput`: bytes kept in memory, read back with `read` (unit tests, small inputs);
- `DirectoryOutput`: files in a local directory (the benchmark's split contender);
- `BucketOutput`: one resumable upload per file, named by the caller (ingest's staging).
A file is committed (made whole and visible) only when the split succeeded; on failure every
open file is aborted, so a failed split never leaves a truncated file behind as if whole.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

Key = tuple[dt.date | None, str]
PARQUET_TYPE = "application/vnd.apache.parquet"
# Resumable uploads go in chunks of a multiple of 256 KiB; each open file buffers up to one.
UPLOAD_CHUNK = 256 << 10


def key_label(key: Key) -> str:
    day, kind = key
    return f"{day.isoformat() if day else 'month'}.{kind}"


class SplitOutput(Protocol):
    def open(self, key: Key) -> Any:
        """A writable binary file for `key`."""

    def commit(self, key: Key, handle: Any) -> None:
        """The file is whole: finish it."""

    def abort(self, key: Key, handle: Any) -> None:
        """The split failed: drop the file, best effort."""


class MemoryOutput:
    def __init__(self) -> None:
        self.files: dict[Key, pa.Buffer] = {}

    def open(self, key: Key) -> pa.BufferOutputStream:
        return pa.BufferOutputStream()

    def commit(self, key: Key, handle: pa.BufferOutputStream) -> None:
        self.files[key] = handle.getvalue()

    def abort(self, key: Key, handle: pa.BufferOutputStream) -> None:
        handle.close()

    def read(self, key: Key) -> pa.Buffer | None:
        return self.files.get(key)


class DirectoryOutput:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: Key) -> Path:
        return self.root / f"{key_label(key)}.parquet"

    def open(self, key: Key) -> Any:
        return open(self.path(key), "wb")

    def commit(self, key: Key, handle: Any) -> None:
        handle.close()

    def abort(self, key: Key, handle: Any) -> None:
        handle.close()
        self.path(key).unlink(missing_ok=True)


class BucketOutput:
    """Each file is a create-only resumable upload to `name(key)`, finished on commit and
    cancelled on abort (a cancelled or never-finished upload leaves no object)."""

    def __init__(self, bucket: Any, name: Callable[[Key], str]) -> None:
        self.bucket, self.name = bucket, name

    def open(self, key: Key) -> Any:
        return self.bucket.blob(self.name(key)).open(
            "wb", chunk_size=UPLOAD_CHUNK, ignore_flush=True, content_type=PARQUET_TYPE, if_generation_match=0
        )

    def commit(self, key: Key, handle: Any) -> None:
        handle.close()

    def abort(self, key: Key, handle: Any) -> None:
        try:
            handle.terminate()
        except Exception:  # noqa: BLE001 - best effort: an unfinished upload expires on its own
            pass
