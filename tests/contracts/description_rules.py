"""The rules Google writes in a field's description, read mechanically.

A discovery document types every field, but some limits exist only as prose: monitoring.v1's
Threshold says "Direction is not allowed in a XyChart", MosaicLayout says "The number of columns
must be between 1 and 48, inclusive". The API enforces them; no emulator does. Each rule here is a
pattern of such a sentence and the check it stands for, so a field whose description carries the
sentence is checked wherever it appears (in any API), and a rule no description matches any more
is visible in tests/contracts/test_discovery_validator.py, which asserts each pattern still occurs
in the documents.

A rule takes the field's value and the chain of schemas it was reached through (the context), and
returns why the value is refused, or None.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

Rule = Callable[[Any, tuple[str, ...]], "str | None"]

# "Direction is not allowed in a XyChart." (monitoring.v1 Threshold.direction, .color, .targetAxis)
NOT_ALLOWED_IN = re.compile(r"(?P<what>[A-Z][\w ]*?) is not allowed in an? (?P<schema>[A-Z]\w+)\b")
# "The number of columns must be between 1 and 48, inclusive." (monitoring.v1 MosaicLayout.columns)
BETWEEN = re.compile(r"must be between (?P<low>-?\d+) and (?P<high>-?\d+), inclusive")
# "x_pos cannot be negative." (monitoring.v1 Tile.xPos, .yPos)
NOT_NEGATIVE = re.compile(r"\bcannot be negative\b")
# "Values greater than 5 and negative values are not allowed." (cloudscheduler.v1 RetryConfig.retryCount)
AT_MOST_NOT_NEGATIVE = re.compile(r"Values greater than (?P<high>\d+) and negative values are not allowed")
# "The value must be at least 60 seconds." (monitoring Aggregation.alignmentPeriod)
AT_LEAST_SECONDS = re.compile(r"must be at least (?P<low>\d+) seconds")
# BigQuery writes many enums as prose. "The following values are supported: * WRITE_TRUNCATE: ...
# * WRITE_APPEND: ..." (JobConfigurationLoad.writeDisposition) ...
SUPPORTED_VALUES = re.compile(r"The following values are supported:(?P<list>(?:\s*\*\s*[A-Z][A-Z0-9_]*:[^*]*)+)")
# ... or 'For CSV files, specify "CSV". ... For parquet, specify "PARQUET".' (sourceFormat)
SPECIFY = re.compile(r'\bspecify "(?P<value>[A-Z][A-Z0-9_]*)"')

PATTERNS = {
    "not allowed in": NOT_ALLOWED_IN,
    "between": BETWEEN,
    "not negative": NOT_NEGATIVE,
    "at most, not negative": AT_MOST_NOT_NEGATIVE,
    "at least seconds": AT_LEAST_SECONDS,
    "supported values": SUPPORTED_VALUES,
    "specify": SPECIFY,
}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value):
        return float(value)
    return None


def _seconds(value: Any) -> float | None:
    if isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?s", value):
        return float(value[:-1])
    return None


def _not_allowed_in(what: str, schema: str) -> Rule:
    def rule(value: Any, context: tuple[str, ...]) -> str | None:
        return f"not allowed in a {schema} ({what} is not allowed in a {schema})" if schema in context else None

    return rule


def _range(low: float | None, high: float | None, sentence: str) -> Rule:
    def rule(value: Any, context: tuple[str, ...]) -> str | None:
        number = _number(value)
        if number is None:
            return None  # the type check reports a value that is no number
        if (low is not None and number < low) or (high is not None and number > high):
            return f"{value!r} is out of range: {sentence}"
        return None

    return rule


def _at_least_seconds(low: float, sentence: str) -> Rule:
    def rule(value: Any, context: tuple[str, ...]) -> str | None:
        seconds = _seconds(value)
        return f"{value!r} is too short: {sentence}" if seconds is not None and seconds < low else None

    return rule


def _one_of(values: tuple[str, ...]) -> Rule:
    def rule(value: Any, context: tuple[str, ...]) -> str | None:
        if isinstance(value, str) and value not in values:
            return f"{value!r} is not one of the values its description lists: {list(values)}"
        return None

    return rule


@cache
def _rules(description: str) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    for match in NOT_ALLOWED_IN.finditer(description):
        rules.append(_not_allowed_in(match["what"], match["schema"]))
    for match in BETWEEN.finditer(description):
        rules.append(_range(float(match["low"]), float(match["high"]), match.group(0)))
    for match in NOT_NEGATIVE.finditer(description):
        rules.append(_range(0, None, match.group(0)))
    for match in AT_MOST_NOT_NEGATIVE.finditer(description):
        rules.append(_range(0, float(match["high"]), match.group(0)))
    for match in AT_LEAST_SECONDS.finditer(description):
        rules.append(_at_least_seconds(float(match["low"]), match.group(0)))
    for match in SUPPORTED_VALUES.finditer(description):
        rules.append(_one_of(tuple(re.findall(r"\*\s*([A-Z][A-Z0-9_]*):", match["list"]))))
    specified = tuple(m["value"] for m in SPECIFY.finditer(description))
    if len(specified) > 1:
        rules.append(_one_of(specified))
    return tuple(rules)


def field_rules(description: str) -> tuple[Rule, ...]:
    """The checks a field's description asks for (none for most fields)."""
    return _rules(description) if description else ()
