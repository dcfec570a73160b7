"""The schema contract: what a month file's columns may be, and what happens when they change.

TLC keeps adding columns (`congestion_surcharge` 2019, `airport_fee` 2022, `cbd_congestion_fee`
2025) and drops or renames others between eras. Like dlt's schema contracts
(https://dlthub.com/docs/general-usage/schema-contracts: `evolve`, `discard_value`,
`discard_row`, `freeze`), one setting per deployment, `SCHEMA_CONTRACT`, says what a column the
declared schema (shared/core/schemas.py) does not know does to a month:

- `evolve` (default): it flows on as a new nullable column: the lake's partitions carry it, and
  the loaders add it to BigQuery and Postgres with a description naming the month it came in;
- `discard_value`: it is dropped, its values with it; the month's manifest records it;
- `discard_row`: rows holding a value in it are rejected (`unexpected_column`); rows where it is
  empty are kept; the manifest records it;
- `freeze`: the month fails, permanently, naming the column (`schema_frozen`).

Whatever the mode:
- a declared column absent from the file is null (recorded as `missing_columns`), as long as the
  file is still recognisably this service's trip file: it has the pickup time (a row without it
  fits no day) and at least half of the declared columns; otherwise `wrong_schema`;
- a new column's clean name is the snake_case of its spelling and must be a safe identifier
  (`[a-z][a-z0-9_]*`, at most 63 characters: PostgreSQL's limit) that no declared or other new
  column already uses; one that is not is never added (kept out of DDL) and recorded;
- a new column's type is one of the pipeline's kinds, chosen from the file's own type so that the
  same column keeps one type across months: every number (int, float, decimal, bool) is `float`
  (TLC writes the same count as int64 in one month and double in the next), text is `string`,
  a naive timestamp `timestamp`, a date `date`, an all-null column `float` (TLC's new columns are
  fees); a CSV carries no types, so a new CSV column is `string`. Other types (nested, binary, a
  timestamp with a time zone) are recorded and dropped;
- declared columns keep being cast to their declared type, month after month (cleaning.py).

Pure: plain names and Arrow types in, a `ColumnPlan` out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from shared.core.errors import SourceError
from shared.core.evolved_columns import SAFE_NAME, lake_field
from shared.core.schemas import Column, columns, source_columns

MODES = ("evolve", "discard_value", "discard_row", "freeze")
DEFAULT_MODE = "evolve"
UNEXPECTED_COLUMN = "unexpected_column"  # the reject reason under discard_row
FROZEN = "schema_frozen"  # the dead-letter reason under freeze
WRONG_SCHEMA = "wrong_schema"
MAX_NEW_COLUMNS = 20  # more than this many unknown columns: not a trip file of this service
ESSENTIAL = ("pickup_datetime",)  # without it a row fits no day
RESERVED = ("reject_reason",)


def snake_case(name: str) -> str:
    """`CBD_Congestion_Fee` -> `cbd_congestion_fee`, `PULocationID` -> `pu_location_id`."""
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name.strip())
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    return re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9]+", "_", text)).strip("_").lower()


def kind_of(arrow_type: pa.DataType, from_csv: bool = False) -> str | None:
    """The kind a new column is kept as, or None when it cannot be kept."""
    if from_csv:
        return "string"
    if pa.types.is_null(arrow_type):
        return "float"
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_boolean(arrow_type):
        return "float"
    if pa.types.is_decimal(arrow_type):
        return "float"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_timestamp(arrow_type) and arrow_type.tz is None:
        return "timestamp"
    if pa.types.is_date(arrow_type):
        return "date"
    return None


@dataclass(frozen=True)
class NewColumn:
    """A column of the file that the declared schema does not know."""

    source: str  # as spelled in the file
    name: str  # its clean snake_case name
    kind: str | None  # the kind it is kept as (None: it cannot be)
    problem: str | None = None  # why it cannot be added (never reaches DDL)

    def column(self) -> Column:
        return Column(self.name, self.kind or "string", f"{self.source!r}: not in the declared schema", (self.source,))

    def lake_field(self, year: int, month: int) -> pa.Field:
        return lake_field(self.name, self.kind or "string", self.source, year, month)


@dataclass(frozen=True)
class ColumnPlan:
    """How a file's columns become the clean columns, under the deployment's contract."""

    mode: str
    mapping: dict[str, str]  # declared clean name -> source name, for the declared columns present
    new: tuple[NewColumn, ...] = ()
    missing: tuple[str, ...] = ()  # declared columns absent from the file: null

    @property
    def added(self) -> tuple[NewColumn, ...]:
        """New columns that flow on to the lake and the destinations (evolve only)."""
        return tuple(c for c in self.new if self.mode == "evolve" and c.problem is None)

    @property
    def row_checked(self) -> tuple[NewColumn, ...]:
        """New columns whose values reject their row (discard_row)."""
        return self.new if self.mode == "discard_row" else ()

    def manifest(self, rows_rejected: int = 0) -> dict[str, Any]:
        """What the month's manifest records: the contract and every column it acted on."""
        added = {c.source for c in self.added}
        return {
            "mode": self.mode,
            "new_columns": [
                {
                    "source": c.source,
                    "name": c.name,
                    "kind": c.kind,
                    "action": "added" if c.source in added else ("rows_rejected" if self.row_checked else "discarded"),
                    **({"why": c.problem} if c.problem else {}),
                }
                for c in self.new
            ],
            "missing_columns": list(self.missing),
            **({"rows_rejected": rows_rejected} if self.row_checked else {}),
        }


def _new_column(source: str, arrow_type: pa.DataType | None, taken: set[str], from_csv: bool) -> NewColumn:
    name = snake_case(source)
    kind = kind_of(arrow_type, from_csv) if arrow_type is not None else "string"
    problem = None
    if not SAFE_NAME.match(name):
        problem = f"clean name {name!r} is not a safe identifier ([a-z][a-z0-9_]*, at most 63 characters)"
    elif name in taken:
        problem = f"clean name {name!r} is already a column"
    elif kind is None:
        problem = f"type {arrow_type} cannot be kept (not a number, text, naive timestamp or date)"
    return NewColumn(source, name, kind, problem)


def plan_columns(
    service: str, names: list[str], mode: str = DEFAULT_MODE, types: dict[str, pa.DataType] | None = None
) -> ColumnPlan:
    """Source header (and, for parquet, its types) -> the ColumnPlan, or a SourceError:
    `wrong_schema` (not this service's trip file; a column twice) or `schema_frozen`."""
    if mode not in MODES:
        raise ValueError(f"unknown schema contract {mode!r}; one of {', '.join(MODES)}")
    known = source_columns(service)
    mapping: dict[str, str] = {}
    unknown: list[str] = []
    for name in names:
        column = known.get(name.strip().lower())
        if column is None:
            unknown.append(name)
        elif column.name in mapping:
            raise SourceError(
                f"column {column.name} appears twice in the source",
                reason=WRONG_SCHEMA,
                field="columns",
                value=[mapping[column.name], name],
            )
        else:
            mapping[column.name] = name
    declared = [c for c in columns(service) if c.sources]
    required = [c.name for c in declared if not c.optional]
    missing = [name for name in required if name not in mapping]
    essential_missing = [name for name in ESSENTIAL if name not in mapping]
    if essential_missing or len(missing) * 2 > len(required) or len(unknown) > MAX_NEW_COLUMNS:
        raise SourceError(
            f"source is not a {service} trip file: missing {missing or 'none'}, unexpected {unknown[:10] or 'none'}",
            reason=WRONG_SCHEMA,
            field="columns",
            value=names[:30],
        )
    taken = {c.name for c in columns(service)} | set(RESERVED)
    new: list[NewColumn] = []
    for source in unknown:
        added = _new_column(source, (types or {}).get(source), taken, from_csv=types is None)
        taken.add(added.name)
        new.append(added)
    if new and mode == "freeze":
        raise SourceError(
            f"the schema contract is freeze and the file has columns the declared {service} schema lacks: "
            f"{[c.source for c in new]}",
            reason=FROZEN,
            field="columns",
            value=[c.source for c in new],
        )
    return ColumnPlan(mode, mapping, tuple(new), tuple(missing))


def holds_values(batch: pa.RecordBatch, sources: list[str]) -> pa.Array | None:
    """Rows with a value (not null, not empty) in any of these source columns (discard_row)."""
    mask = None
    for source in sources:
        array = batch.column(source)
        if pa.types.is_string(array.type) or pa.types.is_binary(array.type):
            held = pc.fill_null(pc.greater(pc.binary_length(array), 0), False)
        else:
            held = pc.is_valid(array)
        mask = held if mask is None else pc.or_(mask, held)
    return mask
