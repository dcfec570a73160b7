"""Writing a month table as TLC publishes it: CSV, CSV.gz or parquet, atomically; and the CLI.

    .venv/bin/python -m local.tlc_files --service green --year 2020 --month 10 --out green.csv.gz

Why apart from the generator: the local TLC server, the tests, the bench and the chaos harness
all write files, some from tables they changed themselves (a stray byte, a new column).
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import tempfile
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from local.tlc_columns import SERVICES, to_parquet_types, to_source_strings
from local.tlc_data import DEFAULT_ROWS_PER_DAY, DEFAULT_SEED, generate_month

FORMATS = ("csv.gz", "csv", "parquet")


def _format_of(path: Path) -> str:
    for fmt in FORMATS:
        if path.name.endswith("." + fmt):
            return fmt
    raise ValueError(f"cannot tell the format of {path.name}; pass one of {FORMATS}")


def write_csv(table: pa.Table, sink) -> None:
    """CSV as TLC writes it: unquoted header and cells, `\\n` line ends, empty cells for nulls."""
    options = pcsv.WriteOptions(quoting_style="none", quoting_header="none", batch_size=65_536)
    pcsv.write_csv(to_source_strings(table), sink, options)


_GZIP_CHUNK = 4 << 20
_WINDOW = 32 << 10


def _deflate_chunk(data: memoryview, start: int, level: int) -> bytes:
    end = min(start + _GZIP_CHUNK, len(data))
    if start >= _WINDOW:  # primed with the previous window, so the chunks join into one stream
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 9, zdict=bytes(data[start - _WINDOW : start]))
    else:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15, 9)
    last = end == len(data)
    return compressor.compress(data[start:end]) + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def write_gzip(data: bytes | memoryview, sink, level: int = 6) -> None:
    """One gzip member, compressed pigz-style: fixed 4 MiB chunks deflated in parallel threads
    (zlib releases the GIL), each primed with the 32 KiB before it and ended on a byte boundary,
    then concatenated. Chunking does not depend on the thread count, and mtime is 0, so the bytes
    are the same on every machine; any gzip reader sees an ordinary single-member file."""
    data = memoryview(data).cast("B")
    starts = range(0, max(len(data), 1), _GZIP_CHUNK)
    sink.write(b"\x1f\x8b\x08\x00" + b"\x00\x00\x00\x00" + b"\x00\xff")  # no name, mtime 0, OS unknown
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for block in pool.map(lambda start: _deflate_chunk(data, start, level), starts):
            sink.write(block)
    sink.write(struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF))


def write_month(
    path: str | os.PathLike,
    table_or_params: pa.Table | Mapping[str, Any],
    fmt: str | None = None,
    *,
    compresslevel: int = 5,
) -> Path:
    """Write a month file atomically (temp file + rename) and return its path.

    table_or_params: a table from generate_month (either rendering) or the keyword arguments of
    generate_month. fmt: csv.gz, csv or parquet (default: from the file name). Gzip output is
    deterministic (see write_gzip), so equal tables give byte-identical files.
    """
    path = Path(path)
    fmt = fmt or _format_of(path)
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}")
    table = table_or_params if isinstance(table_or_params, pa.Table) else generate_month(**table_or_params)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            if fmt == "parquet":
                pq.write_table(to_parquet_types(table), raw, compression="snappy")
            elif fmt == "csv":
                write_csv(table, raw)
            else:
                buffer = pa.BufferOutputStream()
                write_csv(table, buffer)
                write_gzip(buffer.getvalue(), raw, compresslevel)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a served or cached file is meant to be read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a fake NYC TLC month file.")
    parser.add_argument("--service", choices=SERVICES, default="yellow")
    parser.add_argument("--year", type=int, default=2021)
    parser.add_argument("--month", type=int, default=1)
    parser.add_argument("--rows", type=int, default=None, help="total rows (default rows-per-day x days)")
    parser.add_argument("--rows-per-day", type=int, default=DEFAULT_ROWS_PER_DAY)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--format", choices=FORMATS, default=None, help="default: from --out")
    parser.add_argument("--no-quirks", action="store_true", help="no out-of-month pickups, no empty tail")
    parser.add_argument("--tlc-names", action="store_true", help="FHV: TLC 2021+ parquet column names")
    parser.add_argument("--compresslevel", type=int, default=5, help="gzip level (6 is 2.5x slower for 3%% less)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    table = generate_month(
        args.service,
        args.year,
        args.month,
        args.rows,
        args.seed,
        rows_per_day=args.rows_per_day,
        quirks=not args.no_quirks,
        tlc_names=args.tlc_names,
    )
    path = write_month(args.out, table, args.format, compresslevel=args.compresslevel)
    print(f"{path}: {table.num_rows} rows, {path.stat().st_size} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
