"""The REST request bodies infra/terraform makes the google provider send, rendered offline.

Each resource instance is evaluated (tests/contracts/hcl_eval.py) with the variables' defaults
plus DEPLOYMENT (the one required variable and an alert e-mail, so the optional channel exists),
then its HCL attributes are mapped to the API's fields the way the provider maps them for these
resources: snake_case names become camelCase, a nested block becomes an object where the API field
is an object and a list where it is an array, map attributes keep their keys. What the provider
sends elsewhere (the URL, a separate call) is listed in URL_FIELDS with why, and left out.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
from lark import Tree

from tests.contracts.discovery import Discovery
from tests.contracts.hcl_eval import Evaluator, Namespace, Unknown, _children

REPO = Path(__file__).resolve().parents[2]
TF_DIR = Path(os.environ.get("TERRAFORM_DIR", REPO / "infra" / "terraform"))
DEPLOYMENT = {"project_id": "contract-test-project", "alert_email": "ops@example.com"}
META_ARGUMENTS = {"count", "for_each", "depends_on", "lifecycle", "provider"}
# Attributes the provider puts in the request URL or sends in another call, not in the body.
URL_FIELDS = {
    "*": {"project"},  # the URL's projects/{project}
    # the URL's locations/{region}; `paused` is applied by jobs.pause / jobs.resume after the create
    # (the body's `state` is output only)
    "google_cloud_scheduler_job": {"region", "paused"},
}


class Blocks(list):  # type: ignore[type-arg]
    """Nested blocks of one name, rendered (each a dict), as opposed to a list-valued attribute."""


@dataclass
class Resource:
    type: str
    name: str
    body: Tree


@dataclass(frozen=True)
class Instance:
    address: str
    type: str
    values: dict[str, Any]  # HCL names; nested blocks as Blocks


def _split(body: Tree) -> tuple[dict[str, Tree], list[tuple[str, list[str], Tree]]]:
    """A body's attributes (name -> expression) and blocks (type, labels, body)."""
    attributes, blocks = {}, []
    for item in _children(body):
        parts = _children(item)
        if item.data == "attribute":
            attributes[str(parts[0].children[0])] = parts[-1]
        elif item.data == "block":
            labels = [str(p.children[0]) if p.data == "identifier" else _label(p) for p in parts[1:-1]]
            blocks.append((str(parts[0].children[0]), labels, parts[-1]))
    return attributes, blocks


def _label(node: Tree) -> str:
    return "".join(str(part.children[0]) for part in node.children if isinstance(part, Tree))


class Config:
    """infra/terraform's variables, locals and resources, evaluated on demand."""

    def __init__(self, directory: Path = TF_DIR, variables: dict[str, Any] | None = None):
        self.variables: dict[str, Tree | None] = {}
        self.locals: dict[str, Tree] = {}
        self.resources: dict[tuple[str, str], Resource] = {}
        for path in sorted(directory.glob("*.tf")):
            top_attributes, top_blocks = _split(hcl2.parses_to_tree(path.read_text()).children[0])
            for kind, labels, body in top_blocks:
                attributes, _ = _split(body)
                if kind == "variable":
                    self.variables[labels[0]] = attributes.get("default")
                elif kind == "locals":
                    self.locals.update(attributes)
                elif kind == "resource":
                    self.resources[(labels[0], labels[1])] = Resource(labels[0], labels[1], body)
        self.given = {**DEPLOYMENT, **(variables or {})}
        self.evaluator = Evaluator(self._root)
        self._locals: dict[str, Any] = {}

    def _root(self, name: str) -> Any:
        if name == "var":
            return Namespace("var", self._var)
        if name == "local":
            return Namespace("local", self._local)
        if name in ("data", "path", "terraform"):
            return Namespace(name, lambda attr: Namespace(f"{name}.{attr}", lambda a: Unknown(f"{name}.{attr}.{a}")))
        if any(kind == name for kind, _ in self.resources):
            return Namespace(name, lambda resource: self._resource_ref(name, resource))
        raise KeyError(f"unknown name {name!r} in infra/terraform")

    def _var(self, name: str) -> Any:
        if name in self.given:
            return self.given[name]
        assert name in self.variables, f"variable {name} is not declared"
        default = self.variables[name]
        assert default is not None, f"variable {name} has no default: give it in DEPLOYMENT"
        return self.evaluator.eval(default)

    def _local(self, name: str) -> Any:
        if name not in self._locals:
            assert name in self.locals, f"local.{name} is not declared"
            self._locals[name] = self.evaluator.eval(self.locals[name])
        return self._locals[name]

    def _resource_ref(self, kind: str, name: str) -> Namespace:
        resource = self.resources[(kind, name)]
        attributes, _ = _split(resource.body)
        if "count" in attributes or "for_each" in attributes:
            instances = {key: self._values(resource, scope) for key, scope in self._scopes(resource)}

            def instance(key: str) -> Any:
                if key == "[*]":
                    return [_instance_ref(f"{kind}.{name}[{k}]", v) for k, v in instances.items()]
                return _instance_ref(f"{kind}.{name}[{key}]", instances[key])

            return Namespace(f"{kind}.{name}", instance)
        return _instance_ref(f"{kind}.{name}", self._values(resource, {}))

    def _scopes(self, resource: Resource) -> list[tuple[str, dict[str, Any]]]:
        attributes, _ = _split(resource.body)
        if "count" in attributes:
            count = self.evaluator.eval(attributes["count"])
            return [(str(i), {"count": {"index": i}}) for i in range(count)]
        if "for_each" in attributes:
            each = self.evaluator.eval(attributes["for_each"])
            pairs = each.items() if isinstance(each, dict) else ((v, v) for v in each)
            return [(str(k), {"each": {"key": k, "value": v}}) for k, v in pairs]
        return [("", {})]

    def _values(self, resource: Resource, scope: dict[str, Any]) -> dict[str, Any]:
        return self._render(resource.body, scope, META_ARGUMENTS)

    def _render(
        self, body: Tree, scope: dict[str, Any], skip: set[str] | frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        attributes, blocks = _split(body)
        out: dict[str, Any] = {k: self.evaluator.eval(v, scope) for k, v in attributes.items() if k not in skip}
        for kind, labels, inner in blocks:
            if kind in skip:
                continue
            if kind == "dynamic":
                spec, contents = _split(inner)
                items = self.evaluator.eval(spec["for_each"], scope)
                pairs = items.items() if isinstance(items, dict) else enumerate(items)
                for key, value in pairs:
                    for _, _, content in (c for c in contents if c[0] == "content"):
                        rendered = self._render(content, {**scope, labels[0]: {"key": key, "value": value}})
                        out.setdefault(labels[0], Blocks()).append(rendered)
                continue
            out.setdefault(kind, Blocks()).append(self._render(inner, scope))
        return out

    def instances(self, kind: str) -> list[Instance]:
        """Every instance of every `kind` resource, with its attribute values."""
        found = []
        for (type_, name), resource in sorted(self.resources.items()):
            if type_ != kind:
                continue
            for key, scope in self._scopes(resource):
                address = f"{kind}.{name}" + (f'["{key}"]' if key else "")
                found.append(Instance(address, kind, self._values(resource, scope)))
        return found


def _instance_ref(address: str, values: dict[str, Any]) -> Namespace:
    return Namespace(
        address, lambda attr: values[attr] if attr in values else Unknown(f"(known after apply: {address}.{attr})")
    )


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def to_rest(values: dict[str, Any], api: Discovery, schema: str, kind: str = "") -> dict[str, Any]:
    """The request body of `values` (HCL names), shaped by the API's schema."""
    properties = api.schemas[schema].get("properties", {})
    skip = URL_FIELDS["*"] | URL_FIELDS.get(kind, set())
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name in skip:
            continue
        field = camel(name)
        prop = properties.get(field, {})
        if isinstance(value, Blocks):
            target = prop.get("items", prop) if prop.get("type") == "array" else prop
            ref = target.get("$ref")
            rendered = [to_rest(block, api, ref) if ref else dict(block) for block in value]
            if prop.get("type") == "array":
                out[field] = rendered
            else:
                assert len(rendered) == 1, (
                    f"{schema}.{field} is one object; the configuration has {len(rendered)} blocks"
                )
                out[field] = rendered[0]
        elif value is not None:  # an attribute set to null is not sent
            out[field] = value
    return out


@cache
def config() -> Config:
    return Config()


def scheduler_job_name(values: dict[str, Any], project: str, region: str) -> str:
    """The provider sends the job's full resource name."""
    name = values["name"]
    return name if re.match(r"^projects/", name) else f"projects/{project}/locations/{region}/jobs/{name}"
