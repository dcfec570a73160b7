"""Text that is not UTF-8: decoded by one stated rule, kept, counted, never failing the month.

TLC's files are UTF-8, except for stray bytes: the mirror's FHV 2020-01 and 2020-02 CSVs hold
0xA0 (a Windows-1252/Latin-1 no-break space) in a few rows, and learners read them with `latin1`
(DataTalksClub data-engineering-zoomcamp, cohorts/2023/week_3_data_warehouse; the course FAQ's
"can't decode byte 0xa0"). pyarrow's CSV reader refuses such a file whole ("CSV conversion error
to string: invalid UTF8 data"), so before this one byte dead-lettered the whole month.

The rule, per value: the bytes that form valid UTF-8 are read as UTF-8; each byte that is not part
of a valid UTF-8 sequence (a stray 0xA0 or 0xE9, a multibyte sequence cut short) is read as
Windows-1252, and the five bytes Windows-1252 leaves undefined (0x81 0x8D 0x8F 0x90 0x9D) as
Latin-1, which is what WHATWG's windows-1252 decoder does. Every byte string decodes, so no row is
lost for its encoding; a valid UTF-8 value is never changed (it takes the first branch).

Cost: only the slow path pays. The typed CSV reader validates UTF-8 as it reads; a file with a
stray byte fails it, and the month split reads it again as raw bytes (`as_text`), where each
column is validated in one vectorised cast and only a batch column that fails it is decoded value
by value. Each repaired value is recorded (row, column, the bytes, the text they became) for the
month's `repaired_text.csv` beside its rejects, and counted in the manifest.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

ERRORS = "taxi_windows_1252"
MAX_KEPT = 10_000  # repaired values listed in repaired_text.csv; the counts are always exact
EXAMPLES = 5


def _windows_1252(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "".join(_byte(b) for b in exc.object[exc.start : exc.end]), exc.end


def _byte(b: int) -> str:
    try:
        return bytes([b]).decode("cp1252")
    except UnicodeDecodeError:  # undefined in Windows-1252: Latin-1 (a C1 control), as WHATWG does
        return chr(b)


codecs.register_error(ERRORS, _windows_1252)


def decode(value: bytes) -> str:
    """The rule above, on one value."""
    return value.decode("utf-8", errors=ERRORS)


@dataclass
class TextRepairs:
    """The repairs of one month file: counts per column and the first MAX_KEPT repaired values."""

    rows: int = 0
    by_column: dict[str, dict[str, Any]] = field(default_factory=dict)
    kept: list[tuple[int, str, bytes, str]] = field(default_factory=list)  # (source row, column, bytes, text)

    def decode_batch(self, batch: pa.RecordBatch, first_row: int) -> pa.RecordBatch:
        """A batch read as raw bytes -> the same batch as text; `first_row`: the source row number
        (1 = the first data row) of its first row, for the record."""
        arrays: list[pa.Array] = []
        repaired = None
        for name, array in zip(batch.schema.names, batch.columns, strict=True):
            if not pa.types.is_binary(array.type):
                arrays.append(array)
                continue
            try:
                arrays.append(pc.cast(array, pa.string()))  # validates UTF-8: the whole column at once
                continue
            except pa.ArrowInvalid:
                pass
            text, mask = self._decode_values(name, array, first_row)
            arrays.append(text)
            repaired = mask if repaired is None else pc.or_(repaired, mask)
        if repaired is not None:
            self.rows += pc.sum(repaired).as_py() or 0
        return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)

    def _decode_values(self, name: str, array: pa.Array, first_row: int) -> tuple[pa.Array, pa.Array]:
        out: list[str | None] = []
        mask: list[bool] = []
        entry = self.by_column.setdefault(name, {"rows": 0, "examples": []})
        for i, value in enumerate(array.to_pylist()):
            if value is None:
                out.append(None)
                mask.append(False)
                continue
            try:
                out.append(value.decode("utf-8"))
                mask.append(False)
                continue
            except UnicodeDecodeError:
                text = decode(value)
            out.append(text)
            mask.append(True)
            entry["rows"] += 1
            if len(entry["examples"]) < EXAMPLES:
                entry["examples"].append({"row": first_row + i, "bytes": repr(value)[2:-1], "text": text})
            if len(self.kept) < MAX_KEPT:
                self.kept.append((first_row + i, name, value, text))
        return pa.array(out, pa.string()), pa.array(mask, pa.bool_())

    def manifest(self) -> dict[str, Any]:
        return {"rows": self.rows, "columns": self.by_column} if self.rows else {}

    def csv_bytes(self) -> bytes:
        """repaired_text.csv: one line per repaired value, the bytes as Python escapes."""
        table = pa.table(
            {
                "source_row": pa.array([k[0] for k in self.kept], pa.int64()),
                "column": [k[1] for k in self.kept],
                "source_bytes": [repr(k[2])[2:-1] for k in self.kept],
                "decoded_as": [k[3] for k in self.kept],
            }
        )
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table, sink)
        return sink.getvalue().to_pybytes()
