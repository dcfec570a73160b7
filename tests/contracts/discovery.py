"""Validate a request body against Google's API discovery documents, field by field.

No emulator checks the requests Terraform and the BigQuery client send to Monitoring, Logging,
Cloud Scheduler and BigQuery's job API the way Google does: an unknown field, a number where a
string belongs, an enum value the API does not have, or a field whose description says it is not
allowed where it is used passes locally and is refused (or silently dropped) on the first deploy.
The discovery documents (tests/contracts/discovery/, copied from google-api-python-client) are the
API's own description of every request: this module walks a body against them and reports each
problem with its path, e.g. `dashboard.mosaicLayout.tiles[3].widget.xyChart.thresholds[0].direction:
not allowed in a XyChart`.

What is checked: every field is declared by its schema (`$ref` resolved); JSON types and formats
(int32/int64, double, google-duration, google-datetime, byte, date); enum values, including
values whose description says they are not allowed in well-formed requests; read-only fields
(`readOnly`, or a description starting "Output only.");
required fields (descriptions starting "Required." / "[Required]"); and the rules that
tests/contracts/description_rules.py reads from the field descriptions.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tests.contracts.description_rules import field_rules

DOCUMENTS = Path(__file__).resolve().parent / "discovery"
_DURATION = re.compile(r"^-?\d+(\.\d{1,9})?s$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1)}
_INT_STRING = {"int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1)}
_REQUIRED = re.compile(r"^\s*(Required\.|\[Required\])")
_OUTPUT_ONLY = re.compile(r"^\s*(\[Output-only\]|Output only\.)", re.I)
_NOT_ALLOWED_VALUE = re.compile(r"not allowed in well-formed requests", re.I)


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class Discovery:
    """One discovery document: its schemas and its methods."""

    def __init__(self, name: str, document: dict[str, Any]):
        self.name = name
        self.doc = document
        self.schemas: dict[str, dict[str, Any]] = document["schemas"]
        self.methods: dict[str, dict[str, Any]] = {}
        self._partial = False
        self._collect(document)

    def _collect(self, node: dict[str, Any]) -> None:
        for method in node.get("methods", {}).values():
            self.methods[method["id"]] = method
        for child in node.get("resources", {}).values():
            self._collect(child)

    def request_schema(self, method_id: str) -> str:
        """The schema a method's request body must match (e.g. monitoring.projects.dashboards.create)."""
        assert method_id in self.methods, f"{self.name} has no method {method_id}"
        request = self.methods[method_id].get("request")
        assert request, f"{method_id} takes no request body"
        return str(request["$ref"])

    def method_for(self, http_method: str, path: str) -> str:
        """The method a REST call is, from its HTTP method and path (the document's flatPath)."""
        base = self.doc.get("servicePath", "")
        wanted = path.lstrip("/").removeprefix(base)
        for method_id, method in self.methods.items():
            template = method.get("flatPath", method["path"])
            pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
            if method["httpMethod"] == http_method and re.fullmatch(pattern, wanted):
                return method_id
        raise AssertionError(f"no {self.name} method for {http_method} {path}")

    def validate(self, body: Any, schema: str, root: str = "body", partial: bool = False) -> list[Problem]:
        """Every problem of `body` as a `schema` (a schema id of this document). `partial`: a patch,
        which sends only the fields it changes, so required fields may be absent."""
        assert schema in self.schemas, f"{self.name} has no schema {schema}"
        problems: list[Problem] = []
        self._partial = partial
        self._value(body, {"$ref": schema}, root, (), problems)
        return problems

    def validate_request(self, body: Any, method_id: str, root: str = "body") -> list[Problem]:
        partial = self.methods[method_id]["httpMethod"] == "PATCH"
        return self.validate(body, self.request_schema(method_id), root, partial)

    # --- the walk --------------------------------------------------------------------------------

    def _value(self, value: Any, spec: dict[str, Any], path: str, context: tuple[str, ...], out: list[Problem]) -> None:
        if "$ref" in spec:
            name = spec["$ref"]
            self._value(value, self.schemas[name], path, (*context, name), out)
            return
        kind = spec.get("type", "any")
        if kind == "object":
            self._object(value, spec, path, context, out)
        elif kind == "array":
            if not isinstance(value, list):
                out.append(Problem(path, f"expected an array, got {_kind(value)}"))
                return
            for i, item in enumerate(value):
                self._value(item, spec.get("items", {}), f"{path}[{i}]", context, out)
        elif kind != "any":
            message = _scalar(value, kind, spec)
            if message:
                out.append(Problem(path, message))

    def _object(
        self, value: Any, spec: dict[str, Any], path: str, context: tuple[str, ...], out: list[Problem]
    ) -> None:
        if not isinstance(value, dict):
            out.append(Problem(path, f"expected an object ({context[-1] if context else 'map'}), got {_kind(value)}"))
            return
        properties: dict[str, Any] = spec.get("properties", {})
        extra = spec.get("additionalProperties")
        if not properties and extra is None:
            return  # a free-form object (google.protobuf.Struct, JsonObject)
        for key, item in value.items():
            where = f"{path}.{key}"
            if key in properties:
                self._field(item, properties[key], where, context, out)
            elif extra is not None:
                self._value(item, extra, where, context, out)
            else:
                out.append(Problem(where, f"unknown field: {context[-1]} has no field {key!r}"))
        for key, prop in properties.items():
            if not self._partial and key not in value and _REQUIRED.match(prop.get("description", "")):
                out.append(Problem(f"{path}.{key}", f"required field of {context[-1]} is missing"))

    def _field(self, value: Any, prop: dict[str, Any], path: str, context: tuple[str, ...], out: list[Problem]) -> None:
        if prop.get("readOnly") or _OUTPUT_ONLY.match(prop.get("description", "")):
            out.append(Problem(path, "output only: the API ignores or refuses it in a request"))
            return
        for rule in field_rules(prop.get("description", "")):
            message = rule(value, context)
            if message:
                out.append(Problem(path, message))
        self._value(value, prop, path, context, out)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else f"a {type(value).__name__}"
    )


def _scalar(value: Any, kind: str, spec: dict[str, Any]) -> str | None:
    """Why `value` is not a valid `kind` (discovery type) with the spec's format and enum, or None."""
    fmt = spec.get("format")
    if kind == "boolean":
        return None if isinstance(value, bool) else f"expected a boolean, got {_kind(value)}"
    if kind == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else f"expected a number ({fmt or 'double'}), got {_kind(value)}"
    if kind == "integer":
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            return f"expected an integer ({fmt or 'int32'}), got {_kind(value)} {value!r}"
        low, high = _INT_RANGES.get(fmt or "int32", (-(2**31), 2**31 - 1))
        return None if low <= value <= high else f"{value} is out of the {fmt} range"
    if kind != "string":
        return f"unknown discovery type {kind!r}"
    if fmt in _INT_STRING and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # proto3 JSON takes 64-bit integers as numbers or strings
    if not isinstance(value, str):
        return f"expected a string{f' ({fmt})' if fmt else ''}, got {_kind(value)} {value!r}"
    return _format(value, fmt) or _enum(value, spec)


def _format(value: str, fmt: str | None) -> str | None:
    if fmt in _INT_STRING:
        low, high = _INT_STRING[fmt]
        if not re.fullmatch(r"-?\d+", value) or not low <= int(value) <= high:
            return f"expected an {fmt} (a decimal string), got {value!r}"
    elif fmt == "google-duration" and not _DURATION.match(value):
        return f"expected a google-duration like '300s', got {value!r}"
    elif fmt == "google-datetime" and not _DATETIME.match(value):
        return f"expected an RFC 3339 timestamp, got {value!r}"
    elif fmt == "date" and not _DATE.match(value):
        return f"expected a date YYYY-MM-DD, got {value!r}"
    elif fmt == "byte":
        try:
            base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            return f"expected base64 bytes, got {value[:40]!r}"
    return None


def _enum(value: str, spec: dict[str, Any]) -> str | None:
    values = spec.get("enum")
    if not values:
        return None
    if value not in values:
        return f"{value!r} is not one of {values}"
    i = values.index(value)
    described = spec.get("enumDescriptions", [])
    if i < len(described) and _NOT_ALLOWED_VALUE.search(described[i]):
        return f"{value!r}: {described[i].strip()}"
    if i < len(spec.get("enumDeprecated", [])) and spec["enumDeprecated"][i]:
        return f"{value!r} is deprecated"
    return None


@cache
def document(name: str) -> Discovery:
    """A discovery document of tests/contracts/discovery/ by name, e.g. `monitoring.v1`."""
    return Discovery(name, json.loads((DOCUMENTS / f"{name}.json").read_text()))


def report(problems: list[Problem]) -> str:
    return "\n".join(str(p) for p in problems)
