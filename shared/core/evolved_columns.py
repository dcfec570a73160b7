"""Columns a TLC file brought that the declared schema lacks (schema evolution), as the lake
carries them and the loaders add them.

Why in core: ingest writes them (shared/ingest/schema_contract.py decides which) and both loaders
add them to their tables, and `load` may not import `ingest`. A new column is a field after the
declared ones in a trips/ partition, with metadata naming its source spelling and the month of
the file that brought it; its name and type are checked here again before any DDL, so a
partition put in the lake by hand cannot inject an identifier.
"""

from __future__ import annotations

import re

import pyarrow as pa

from shared.core.errors import SourceError
from shared.core.schemas import Column, arrow_schema

SAFE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # snake_case, a safe identifier; 63: PostgreSQL's limit
META_SOURCE = b"taxi_source_name"
META_FIRST_MONTH = b"taxi_first_month"
KIND_OF_TYPE = {pa.float64(): "float", pa.string(): "string", pa.timestamp("us"): "timestamp", pa.date32(): "date"}


def lake_field(name: str, kind: str, source: str, year: int, month: int) -> pa.Field:
    column = Column(name, kind, "", (source,))
    return pa.field(
        name,
        column.arrow_type,
        metadata={META_SOURCE: source.encode(), META_FIRST_MONTH: f"{year:04d}-{month:02d}".encode()},
    )


def extra_fields(schema: pa.Schema, service: str) -> list[pa.Field]:
    """The fields of a partition beyond the declared schema, which must come first and whole.
    A SourceError (`schema_mismatch`) names what does not fit."""
    declared = arrow_schema(service)
    head = pa.schema([pa.field(f.name, f.type) for f in schema][: len(declared)])
    if not head.equals(declared):
        raise SourceError(
            "partition schema does not start with the declared trips schema",
            reason="schema_mismatch",
            field="schema",
            value=str(head)[:300],
        )
    extras = [schema.field(i) for i in range(len(declared), len(schema))]
    for f in extras:
        if not SAFE_NAME.match(f.name) or f.name in declared.names or f.type not in KIND_OF_TYPE:
            raise SourceError(
                "partition has an added column that is not a safe identifier of a known type",
                reason="schema_mismatch",
                field="schema",
                value=f"{f.name}: {f.type}"[:300],
            )
    return extras


def column_of(f: pa.Field, service: str) -> Column:
    """An added field as a Column (BigQuery/Postgres types), with its description."""
    return Column(f.name, KIND_OF_TYPE[f.type], describe(f, service))


def describe(f: pa.Field, service: str) -> str:
    """What the column is and when it first came, for BigQuery's description and Postgres' COMMENT."""
    meta = f.metadata or {}
    source = meta.get(META_SOURCE, f.name.encode()).decode(errors="replace")[:100]
    month = meta.get(META_FIRST_MONTH, b"unknown").decode(errors="replace")[:7]
    return (
        f"Column {source!r} of TLC's {service} files, not in the declared schema: added by schema evolution "
        f"(SCHEMA_CONTRACT=evolve) when the file of {month} first brought it here; null for earlier rows."
    )
