"""A column of a service: its source spellings, clean name, types in every destination and meaning.

Apart from shared/core/schemas.py so that each service's table can live in its own module
(shared/core/schema_fhvhv.py) without an import circle.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

import shared.core.arrow_pandas  # noqa: F401 - before any conversion: pyarrow never imports pandas

# kind -> (arrow type, BigQuery type, PostgreSQL type)
_TYPES = {
    "int": (pa.int64(), "INT64", "bigint"),
    "float": (pa.float64(), "FLOAT64", "double precision"),
    "string": (pa.string(), "STRING", "text"),
    # Naive New York local time: DATETIME / timestamp without time zone, never shifted.
    "timestamp": (pa.timestamp("us"), "DATETIME", "timestamp without time zone"),
    "date": (pa.date32(), "DATE", "date"),
}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    description: str
    sources: tuple[str, ...] = ()  # spellings in TLC files; empty = derived column
    optional: bool = False  # absent from older files; filled with nulls

    @property
    def arrow_type(self) -> pa.DataType:
        return _TYPES[self.kind][0]

    @property
    def bq_type(self) -> str:
        return _TYPES[self.kind][1]

    @property
    def pg_type(self) -> str:
        return _TYPES[self.kind][2]


def c(name: str, kind: str, description: str, *sources: str, optional: bool = False) -> Column:
    return Column(name, kind, description, sources, optional)


PICKUP_DATE_COLUMN = c(
    "pickup_date", "date", "Calendar date of pickup_datetime; the partition key of the lake, BigQuery and Postgres."
)
