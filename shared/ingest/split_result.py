"""What a month split produced: per date, the rows its trips and rejects files hold, and for the
month, its rejects, bad values, malformed lines, schema-contract record and text repairs.

Why its own module: the manifest (shared/ingest/staging.py) and the checks read these records
without the splitting machinery of shared/ingest/lake.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shared.ingest.split_output import MemoryOutput, SplitOutput
from shared.ingest.text_repair import TextRepairs


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
    contract: dict[str, Any] = field(default_factory=dict)  # the schema contract's record (manifest)
    repairs: TextRepairs = field(default_factory=TextRepairs)  # text that was not UTF-8

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
