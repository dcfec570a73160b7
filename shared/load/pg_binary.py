"""An Arrow table as PostgreSQL's binary COPY format, column at a time (numpy and Arrow kernels, no per-row Python).

Why binary and not CSV: measured on a full-size day (issue 19), most of a CSV COPY's time is
text the server parses back (every float through strtod, every timestamp through the datetime
parser) and text pyarrow formats on our side. In the binary format each value is its wire
representation: an 8-byte big-endian integer or IEEE double, microseconds or days since
2000-01-01, UTF-8 bytes. Nothing is quoted or escaped, so no value can be misread as another
(NULL vs empty string, a quote inside a text).

The format (https://www.postgresql.org/docs/current/sql-copy.html, "Binary Format"): an
11-byte signature, a 4-byte flags field and a 4-byte header-extension length; per row a 2-byte
field count, then per field a 4-byte length (-1 for NULL) and the bytes; a 2-byte -1 trailer.
Rows that share a layout (the same columns NULL, the same text lengths: nearly all of a day)
are one numpy record array whose packed fields are the lengths and values, so its bytes are the
rows exactly as PostgreSQL reads them; each column is converted once, by numpy.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.core.schemas import Column

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
_EPOCH_2000_DAYS = 10_957  # 1970-01-01 -> 2000-01-01
_EPOCH_2000_US = _EPOCH_2000_DAYS * 86_400 * 1_000_000
_WIRE = {"int": (">i8", 8), "float": (">f8", 8), "timestamp": (">i8", 8), "date": (">i4", 4)}


def _numbers(column: Column, values: pa.Array) -> np.ndarray:
    """The column's values as numpy numbers in PostgreSQL's units (nulls as 0; masked later)."""
    if column.kind == "timestamp":
        return pc.cast(values.cast(pa.timestamp("us")), pa.int64()).fill_null(0).to_numpy() - _EPOCH_2000_US
    if column.kind == "date":
        return pc.cast(values.cast(pa.date32()), pa.int32()).fill_null(0).to_numpy() - _EPOCH_2000_DAYS
    if column.kind == "float":
        return values.cast(pa.float64()).fill_null(0.0).to_numpy()
    return values.cast(pa.int64()).fill_null(0).to_numpy()


def _layout_keys(table: pa.Table, schema: list[Column]) -> np.ndarray | None:
    """Per row, what decides its byte layout: which values are NULL, how long each text is.
    None when every row is laid out alike (the common case)."""
    parts = []
    for column in schema:
        values = table.column(column.name)
        if column.kind == "string":
            lengths = pc.binary_length(values.cast(pa.string())).fill_null(-1).to_numpy()
            if len(lengths) and lengths.min() != lengths.max():
                parts.append(lengths.astype(np.int64))
        elif 0 < values.null_count < table.num_rows:
            parts.append(values.is_null().to_numpy(zero_copy_only=False).astype(np.int64))
    return np.column_stack(parts) if parts else None


def _uniform_rows(table: pa.Table, schema: list[Column]) -> bytes:
    """Rows that share one layout, as one numpy record array (a packed field per length and value)."""
    rows = table.num_rows
    fields: list[tuple[str, str]] = [("count", ">i2")]
    fills: list[tuple[str, object]] = [("count", len(schema))]
    for i, column in enumerate(schema):
        values = table.column(column.name).combine_chunks()
        fields.append((f"l{i}", ">i4"))
        if values.null_count == rows:
            fills.append((f"l{i}", -1))
        elif column.kind == "string":
            text = values.cast(pa.string())
            offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)[text.offset : text.offset + rows + 1]
            width = int(offsets[1] - offsets[0])
            fills.append((f"l{i}", width))
            if width:  # every text of these rows has `width` bytes: the data buffer is the field values
                fields.append((f"v{i}", f"S{width}"))
                data = np.frombuffer(text.buffers()[2], dtype=f"S{width}", count=rows, offset=int(offsets[0]))
                fills.append((f"v{i}", data))
        else:
            dtype, width = _WIRE[column.kind]
            fields.append((f"v{i}", dtype))
            fills += [(f"l{i}", width), (f"v{i}", _numbers(column, values))]
    records = np.empty(rows, dtype=np.dtype(fields))  # packed: no padding between fields
    for name, value in fills:
        records[name] = value
    return records.tobytes()


def encode_rows(table: pa.Table, schema: list[Column]) -> bytes:
    """The rows of `table` (no header, no trailer) in binary COPY format, columns in `schema` order.

    Rows are grouped by layout (NULLs, text lengths) and each group is written as a record array;
    a COPY's rows have no order, so the groups are sent one after the other."""
    if table.num_rows == 0:
        return b""
    keys = _layout_keys(table, schema)
    if keys is None:
        return _uniform_rows(table, schema)
    _, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.reshape(-1)
    grouped = table.take(pa.array(np.argsort(group, kind="stable")))
    out, start = [], 0
    for size in np.bincount(group):
        out.append(_uniform_rows(grouped.slice(start, int(size)), schema))
        start += int(size)
    return b"".join(out)


def copy_chunks(table: pa.Table, schema: list[Column], rows_per_chunk: int) -> Iterator[bytes]:
    """The whole COPY stream: header, rows in chunks (one CopyData message each), trailer."""
    yield HEADER
    for start in range(0, table.num_rows, rows_per_chunk):
        yield encode_rows(table.slice(start, rows_per_chunk), schema)
    yield TRAILER
