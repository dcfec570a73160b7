"""Where the month split's files go while they are being written.

The split writes up to 63 parquet files at once (trips and rejects of every date, and the
month's out-of-month rows), each growing row group by row group as the month file streams by.
Holding them in memory until the end made ingest's peak grow with the month (about 20 MB per
million rows: 612 MB for a 13 M-row month); streaming each to its destination as it grows
bounds memory by design: a file in a bucket holds at most SINGLE_SHOT bytes in memory.

A file is named by a key, `(date, kind)`: `(2021-01-15, "trips")`, `(2021-01-15, "rejects")`,
and `(None, "rejects")` for the month's own rejects. Three outputs:
- `MemoryOutput`: bytes kept in memory, read back with `read` (unit tests, small inputs);
- `DirectoryOutput`: files in a local directory (the benchmark's split contender);
- `BucketOutput`: one upload per file, named by the caller (ingest's staging).
A file is committed (made whole and visible) only when the split succeeded; on failure every
open file is aborted, so a failed split never leaves a truncated file behind as if whole.
"""

from __future__ import annotations

import datetime as dt
import io
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
    """Each file is a create-only upload to `name(key)`, finished on commit and cancelled on
    abort (a cancelled or never-finished upload leaves no object). A file stays in memory until
    it outgrows SINGLE_SHOT, and a file that never does is one request on commit; a larger one
    becomes a resumable upload of UPLOAD_CHUNK chunks."""

    def __init__(self, bucket: Any, name: Callable[[Key], str]) -> None:
        self.bucket, self.name = bucket, name

    def open(self, key: Key) -> Any:
        return _Upload(self.bucket.blob(self.name(key)))

    def commit(self, key: Key, handle: Any) -> None:
        handle.close()

    def abort(self, key: Key, handle: Any) -> None:
        try:
            handle.terminate()
        except Exception:  # noqa: BLE001 - best effort: an unfinished upload expires on its own
            pass


# A day's file of a typical month (1.4 M rows: about 0.8 MB of trips, 50 kB of rejects) fits, so the
# month's 63 files cost 63 requests instead of about 220 (a session and 256 KiB chunks each). Memory:
# the files still under it are held until committed, at most 63 MiB whatever the month (27 MB for
# that month's staged files); a larger month's daily files outgrow it early and stream as before.
SINGLE_SHOT = 1 << 20


class _Upload(io.RawIOBase):
    """A create-only (if_generation_match=0) upload that starts as bytes in memory."""

    def __init__(self, blob: Any) -> None:
        super().__init__()
        self.blob, self.buffer, self.size = blob, bytearray(), 0
        self.resumable: Any = None

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.size += len(view)
        if self.resumable is not None:
            self.resumable.write(view)
        else:
            self.buffer += view
            if len(self.buffer) > SINGLE_SHOT:
                self.resumable = self.blob.open(
                    "wb", chunk_size=UPLOAD_CHUNK, ignore_flush=True, content_type=PARQUET_TYPE, if_generation_match=0
                )
                self.resumable.write(bytes(self.buffer))
                self.buffer = bytearray()
        return len(view)

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        if self.resumable is not None:
            self.resumable.close()
        else:
            self.blob.upload_from_string(bytes(self.buffer), content_type=PARQUET_TYPE, if_generation_match=0)
            self.buffer = bytearray()

    def terminate(self) -> None:
        """Drop the file: an upload session is cancelled, bytes in memory are forgotten."""
        resumable, self.resumable, self.buffer = self.resumable, None, bytearray()
        super().close()
        if resumable is not None:
            resumable.terminate()
