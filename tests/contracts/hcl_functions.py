"""Terraform's operators and built-in functions, as far as infra/terraform uses them.

Each one follows Terraform's documented behaviour for the argument types the configuration
passes; hcl_eval.py raises EvalError for a function not listed here rather than guess.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import re
from collections.abc import Callable
from typing import Any


def normalize(value: Any) -> Any:
    """Terraform has one number type: an integral result is an integer (16, not 16.0)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def as_text(value: Any) -> str:
    """A value interpolated into a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(normalize(value))
    raise ValueError(f"cannot interpolate {value!r} into a string")


BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "%": lambda a, b: a % b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


def _format(spec: str, *args: Any) -> str:
    return re.sub(r"%v", "%s", spec) % tuple(args)


def _replace(text: str, old: str, new: str) -> str:
    if len(old) > 1 and old.startswith("/") and old.endswith("/"):
        return re.sub(old[1:-1], re.sub(r"\$(\d)", r"\\\1", new), text)
    return text.replace(old, new)


def _regex(pattern: str, text: str) -> Any:
    match = re.search(pattern, text)
    if not match:
        raise ValueError(f"regex {pattern!r} does not match {text!r}")
    return match.groupdict() if match.groupdict() else list(match.groups()) if match.groups() else match.group(0)


def _merge(*maps: dict[str, Any]) -> dict[str, Any]:
    return {k: v for m in maps for k, v in (m or {}).items()}


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "jsonencode": lambda v: json.dumps(v, separators=(",", ":")),
    "base64encode": lambda s: base64.b64encode(s.encode()).decode(),
    "merge": _merge,
    "concat": lambda *lists: [x for seq in lists for x in seq],
    "join": lambda sep, items: sep.join(as_text(i) for i in items),
    "keys": lambda m: sorted(m),
    "values": lambda m: [m[k] for k in sorted(m)],
    "sort": lambda items: sorted(items),
    "toset": lambda items: sorted(set(items)),
    "length": len,
    "contains": lambda items, v: v in items,
    "coalesce": lambda *a: next(v for v in a if v is not None and v != ""),
    "format": _format,
    "replace": _replace,
    "regex": _regex,
    "floor": lambda n: math.floor(n),
    "max": lambda *n: max(n),
    "tonumber": lambda v: None if v is None else normalize(float(v)),
    "tostring": lambda v: None if v is None else as_text(v),
    "lower": lambda s: s.lower(),
    "upper": lambda s: s.upper(),
    "trimspace": lambda s: s.strip(),
    "trimsuffix": lambda s, suffix: s[: -len(suffix)] if suffix and s.endswith(suffix) else s,
    "split": lambda sep, s: s.split(sep),
    "setproduct": lambda *sets: [list(p) for p in itertools.product(*sets)],
    "element": lambda items, i: items[i % len(items)],
}
