"""Cleaning rules and data-quality checks, on Arrow batches (no Python loop over rows).

A source batch becomes a clean batch: snake_case names, declared types,
timestamps kept naive (New York local time, never shifted), a `pickup_date`
column, and a `reject_reason` column that is null for rows that belong in
`trips/`. Every rejected row keeps its reason, so nothing read is silently lost.

Reasons, in the order they are tested (a row gets the first that applies):
- `missing_pickup_datetime`  no usable pickup time (empty or unreadable): the row fits no day
- `outside_source_month`     picked up outside the month of the file it came in
- `bad_value`                a value that is not of its column's type (text in a number column,
                             1.5 passengers, an impossible date); the value is nulled in the
                             rejects file and named, with examples, in the month's manifest
- `unexpected_column`        a value in a column the declared schema lacks, under
                             SCHEMA_CONTRACT=discard_row (shared/ingest/schema_contract.py)
- `zero_passengers`          passenger_count == 0 (the tutorial's rule)
- `missing_passenger_count`  passenger_count empty (kept if KEEP_EMPTY_PASSENGER_COUNT)
The first two are month-level (recorded once per source month); the others are
recorded with the day of the pickup. Bad values are a row-level fault only while they are
rare: past MAX_BAD_SHARE of a batch it is the file that is wrong (a shifted column, a new
format), and the month fails with a SourceError naming the column.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from shared.core.errors import QualityCheckError, SourceError
from shared.core.evolved_columns import extra_fields
from shared.core.schemas import Column, columns, has_column
from shared.ingest.schema_contract import DEFAULT_MODE, UNEXPECTED_COLUMN, ColumnPlan, holds_values, plan_columns

MONTH_LEVEL_REASONS = ("missing_pickup_datetime", "outside_source_month")
DAY_LEVEL_REASONS = ("bad_value", UNEXPECTED_COLUMN, "zero_passengers", "missing_passenger_count")
MAX_BAD_SHARE = 0.01  # of a batch's rows; and always allowed:
MAX_BAD_FLOOR = 10
BAD_EXAMPLES = 5  # values kept per column to show a person what was rejected
REASONS = MONTH_LEVEL_REASONS + DAY_LEVEL_REASONS


@dataclass(frozen=True)
class Rules:
    keep_empty_passenger_count: bool = False
    schema_contract: str = DEFAULT_MODE  # SCHEMA_CONTRACT: what a column the declared schema lacks does


def map_columns(service: str, names: list[str]) -> dict[str, str]:
    """Source header -> {clean name: source name} of the declared columns (schema_contract.py
    decides what the others do); a file that is not this service's is a SourceError."""
    return plan_columns(service, names).mapping


def csv_column_types(service: str) -> dict[str, pa.DataType]:
    """Types for pyarrow's CSV reader, by every known spelling.

    Integers are read as float64 and cast exactly later: some TLC CSVs write
    `1.0` for passenger counts; a non-integral value then fails loudly.
    """
    types: dict[str, pa.DataType] = {}
    for column in columns(service):
        read_as = {"int": pa.float64(), "timestamp": pa.timestamp("s")}.get(column.kind, column.arrow_type)
        for spelling in column.sources:
            types[spelling] = read_as
    return types


class _BadBudget:
    """How many more unreadable values a batch may have before the file itself is judged bad."""

    def __init__(self, rows: int) -> None:
        self.left = max(MAX_BAD_FLOOR, int(rows * MAX_BAD_SHARE))
        self.error = ""


def _tolerant(
    convert: Callable[[pa.Array], pa.Array], array: pa.Array, target: pa.DataType, budget: _BadBudget
) -> tuple[pa.Array, pa.Array | None]:
    """convert(array), except that the values it refuses become null and are flagged in the
    returned mask (None: none refused). Bisects only when a whole slice is refused, so a clean
    batch costs one call and k bad values about 2k log2(n) calls on ever smaller slices."""
    try:
        return convert(array), None
    except pa.ArrowInvalid as exc:
        if len(array) == 1:
            budget.left -= 1
            budget.error = str(exc)
            if budget.left < 0:
                raise _TooManyBad() from exc
            return pa.nulls(1, target), pa.array([True])
    middle = len(array) // 2
    left, left_bad = _tolerant(convert, array.slice(0, middle), target, budget)
    right, right_bad = _tolerant(convert, array.slice(middle), target, budget)
    masks = [
        m if m is not None else pa.repeat(pa.scalar(False), len(a)) for m, a in ((left_bad, left), (right_bad, right))
    ]
    return pa.concat_arrays([left, right]), pa.concat_arrays(masks)


class _TooManyBad(Exception):
    pass


def _either(a: pa.Array | None, b: pa.Array | None) -> pa.Array | None:
    return b if a is None else a if b is None else pc.or_(a, b)


def _convert(array: pa.ChunkedArray | pa.Array, column: Column, budget: _BadBudget) -> tuple[pa.Array, pa.Array | None]:
    """A source column in its declared type, and the mask of rows whose value could not be."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    target = column.arrow_type
    if column.kind == "string":
        array = pc.cast(array, pa.string())
        return pc.if_else(pc.equal(pc.utf8_length(array), 0), pa.scalar(None, pa.string()), array), None
    if pa.types.is_timestamp(array.type) and array.type.tz is not None:
        raise SourceError(
            f"{column.name} has a time zone ({array.type.tz}); TLC times are naive local times",
            reason="wrong_schema",
            field=column.name,
            value=str(array.type),
        )
    try:
        if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):  # a CSV read as text
            array = pc.if_else(pc.equal(pc.utf8_length(array), 0), pa.scalar(None, array.type), array)
            if column.kind == "timestamp":
                return _tolerant(
                    lambda a: pc.cast(pc.strptime(a, format="%Y-%m-%d %H:%M:%S", unit="us"), target),
                    array,
                    target,
                    budget,
                )
            if pa.types.is_integer(target):  # TLC writes counts as `1.0` too: via float64, exactly
                array, bad = _tolerant(lambda a: pc.cast(a, pa.float64()), array, pa.float64(), budget)
                array, more = _tolerant(lambda a: pc.cast(a, target), array, target, budget)
                return array, _either(bad, more)
        return _tolerant(lambda a: pc.cast(a, target), array, target, budget)  # safe: 1.5 passengers is refused
    except _TooManyBad:
        raise SourceError(
            f"column {column.name} has too many values that are not {column.kind} "
            f"(more than {MAX_BAD_SHARE:.0%} of a batch): {budget.error}",
            reason="bad_value",
            field=column.name,
            value=budget.error[:200],
        ) from None


def _examples(array: pa.Array, bad: pa.Array) -> list[str]:
    return [str(v) for v in array.filter(bad).slice(0, BAD_EXAMPLES).to_pylist()]


def clean_batch(
    batch: pa.RecordBatch,
    service: str,
    plan: ColumnPlan,
    year: int,
    month: int,
    rules: Rules,
    bad_values: dict[str, dict[str, Any]] | None = None,
) -> pa.Table:
    """One source batch -> clean columns + pickup_date + reject_reason. Unreadable values are
    tallied per column into `bad_values` ({column: {"rows": n, "examples": [...]}})."""
    arrays: list[pa.Array] = []
    names: list[str] = []
    bad = None
    budget = _BadBudget(batch.num_rows)
    declared = [(c, plan.mapping.get(c.name)) for c in columns(service)]
    for column, source_name in declared + [(c.column(), c.source) for c in plan.added]:
        if column.name == "pickup_date":  # derived, after pickup_datetime; added columns follow it
            arrays.append(pc.cast(arrays[names.index("pickup_datetime")], pa.date32()))
            names.append(column.name)
            continue
        if source_name is not None:
            source = batch.column(source_name)
            converted, refused = _convert(source, column, budget)
            arrays.append(converted)
            if refused is not None:
                bad = _either(bad, refused)
                if bad_values is not None:
                    entry = bad_values.setdefault(column.name, {"rows": 0, "examples": []})
                    entry["rows"] += pc.sum(refused).as_py()
                    entry["examples"] = (entry["examples"] + _examples(source, refused))[:BAD_EXAMPLES]
        else:
            arrays.append(pa.nulls(batch.num_rows, column.arrow_type))
        names.append(column.name)
    table = pa.Table.from_arrays(arrays, names=names)
    unexpected = holds_values(batch, [c.source for c in plan.row_checked])
    return table.append_column("reject_reason", reject_reasons(table, service, year, month, rules, bad, unexpected))


def reject_reasons(
    table: pa.Table,
    service: str,
    year: int,
    month: int,
    rules: Rules,
    bad: pa.Array | None = None,
    unexpected: pa.Array | None = None,
) -> pa.ChunkedArray:
    """The first failing rule per row, or null: vectorised with case_when."""
    first = dt.date(year, month, 1)
    after = dt.date(year + month // 12, month % 12 + 1, 1)
    day = table["pickup_date"]
    conditions = [
        pc.is_null(day),
        pc.or_(pc.less(day, pa.scalar(first, pa.date32())), pc.greater_equal(day, pa.scalar(after, pa.date32()))),
    ]
    reasons = list(MONTH_LEVEL_REASONS)
    if bad is not None:
        conditions.append(bad)
        reasons.append("bad_value")
    if unexpected is not None:
        conditions.append(unexpected)
        reasons.append(UNEXPECTED_COLUMN)
    if has_column(service, "passenger_count"):
        passengers = table["passenger_count"]
        conditions.append(pc.fill_null(pc.equal(passengers, 0), False))
        reasons.append("zero_passengers")
        if not rules.keep_empty_passenger_count:
            conditions.append(pc.is_null(passengers))
            reasons.append("missing_passenger_count")
    if table.num_rows == 0:
        return pa.chunked_array([pa.array([], pa.string())])
    cond = pa.StructArray.from_arrays(
        [
            pc.fill_null(c, False).combine_chunks() if isinstance(c, pa.ChunkedArray) else pc.fill_null(c, False)
            for c in conditions
        ],
        names=[f"c{i}" for i in range(len(conditions))],
    )
    return pa.chunked_array([pc.case_when(cond, *[pa.scalar(r) for r in reasons])])


def reason_counts(reject_reason: pa.ChunkedArray | pa.Array) -> dict[str, int]:
    counts = pc.value_counts(pc.drop_null(reject_reason))
    if isinstance(counts, pa.ChunkedArray):
        counts = counts.combine_chunks()
    return {item["values"].as_py(): item["counts"].as_py() for item in counts}


# The columns check_partition reads: a caller holding a parquet file decodes only these (a day
# of a 13 M-row month is ~450k rows; all its columns decoded cost ~100 MB, these ~10 MB).
CHECKED_COLUMNS = ("pickup_date", "passenger_count", "pickup_datetime")


def check_partition(
    trips: pa.Table, service: str, day: dt.date, rules: Rules, source_rows_for_day: int, schema: pa.Schema | None = None
) -> None:
    """The tutorial's @test blocks, made strict: a failure keeps the output out of trips/.
    `schema`: the whole file's, when `trips` holds only the CHECKED_COLUMNS it has."""
    schema = schema if schema is not None else trips.schema
    try:  # the declared columns first, then only columns the schema contract added
        extra_fields(schema, service)
    except SourceError:
        raise QualityCheckError(
            "partition schema differs from the declared schema", field="schema", value=str(schema)[:300]
        ) from None
    if trips.num_rows == 0 and source_rows_for_day > 0:
        raise QualityCheckError(
            "no rows kept although the source has rows for the date",
            field="rows",
            value=0,
            source_rows=source_rows_for_day,
        )
    if trips.num_rows == 0:
        return
    dates = pc.unique(trips["pickup_date"]).to_pylist()
    if dates != [day]:
        raise QualityCheckError(
            "rows with another pickup_date in the partition", field="pickup_date", value=[str(d) for d in dates[:5]]
        )
    if "passenger_count" in trips.column_names:
        passengers = trips["passenger_count"]
        zero = pc.sum(pc.fill_null(pc.equal(passengers, 0), False)).as_py() or 0
        if zero:
            raise QualityCheckError(
                "rows with zero passengers in the partition", field="passenger_count", value=0, rows=zero
            )
        if not rules.keep_empty_passenger_count and passengers.null_count:
            raise QualityCheckError(
                "rows with empty passenger_count in the partition",
                field="passenger_count",
                value=None,
                rows=passengers.null_count,
            )
    if trips["pickup_datetime"].null_count:
        raise QualityCheckError("rows without pickup_datetime in the partition", field="pickup_datetime", value=None)
