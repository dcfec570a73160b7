"""What infra/terraform grants each function's service account, read from iam.tf, as checkable grants.

The local stack enforces the deployed IAM (local/stack/iam_enforce.py), so the grants come from the
one place they are declared, not from a copy that could drift: each `google_*_iam_member` whose
member is a function's account (`local.sa.<function>`) becomes one `Grant` per instance, with its
role, the resource it is granted on (project, bucket, dataset, topic, subscription) and its IAM
condition (object-name prefixes). Grants to the trigger, build and service-agent identities are no
function's and are left out. An expression this reader does not understand fails loudly
(`PolicyError`), so a new grant can never be silently ignored, which would make enforcement lie.

Terraform names its resources (`google_storage_bucket.lake`); the local stack names them through the
functions' settings (LAKE_BUCKET, ...). `RESOURCE_SETTINGS` binds one to the other and is read at
check time, so a test that gives a function another bucket (`LAKE_BUCKET=it-...`) gets the lake's
grants on it, exactly as the deployed function would on its configured bucket.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "iam_data"
IAM_TF = REPO / "infra" / "terraform" / "iam.tf"
ENFORCED_SERVICES = ("storage", "bigquery", "pubsub")
FUNCTIONS = ("ingest", "backfill", "backfill_http", "load_bigquery", "load_postgres", "status")

# Terraform reference -> (resource kind, the setting that names it locally).
RESOURCE_SETTINGS = {
    "var.project_id": ("project", "GCP_PROJECT"),
    "google_storage_bucket.lake": ("bucket", "LAKE_BUCKET"),
    "google_bigquery_dataset.nyc_taxi": ("dataset", "BQ_DATASET"),
    "google_pubsub_topic.ingest": ("topic", "INGEST_TOPIC"),
    "google_pubsub_topic.backfill": ("topic", "BACKFILL_TOPIC"),
    "google_pubsub_topic.dead_letter": ("topic", "DEAD_LETTER_TOPIC"),
    "google_pubsub_topic.lake_events": ("topic", "LAKE_EVENTS_TOPIC"),
}
# The attribute that names the resource, per grant type.
SCOPE_ATTRIBUTE = {
    "google_project_iam_member": "project",
    "google_storage_bucket_iam_member": "bucket",
    "google_bigquery_dataset_iam_member": "dataset_id",
    "google_pubsub_topic_iam_member": "topic",
    "google_pubsub_subscription_iam_member": "subscription",
}
_REF = re.compile(r"^\$\{([a-z_]+\.[a-z_]+)(?:\.(?:name|id|dataset_id))?\}$")
_PREFIX = re.compile(r'resource\.name\.startsWith\("projects/_/buckets/\$\{([a-z_.]+)\.name\}/objects/([^"]*)"\)')


class PolicyError(ValueError):
    """iam.tf holds something this reader cannot turn into a grant; names the resource and value."""


@dataclasses.dataclass(frozen=True)
class Grant:
    """One role granted to one function's account on one resource, maybe narrowed by object prefixes."""

    address: str  # e.g. google_storage_bucket_iam_member.lake["ingest"]
    function: str
    role: str
    ref: str  # Terraform reference of the resource, a key of RESOURCE_SETTINGS
    prefixes: tuple[str, ...] = ()  # IAM condition: object names starting with one of these

    @property
    def kind(self) -> str:
        return RESOURCE_SETTINGS[self.ref][0]

    def resource_name(self, env: Any = os.environ) -> str:
        """Google's full resource name of what the grant is on, as named locally now."""
        value = env.get(RESOURCE_SETTINGS[self.ref][1], "")
        project = env.get("GCP_PROJECT", "")
        return {
            "project": f"projects/{value}",
            "bucket": f"projects/_/buckets/{value}",
            "dataset": f"projects/{project}/datasets/{value}",
            "topic": f"projects/{project}/topics/{value}",
        }[self.kind]

    def covers(self, resource: str, env: Any = os.environ) -> bool:
        """A grant covers its resource and what lies below it; a project grant covers the project's
        datasets, topics and (locally, all in one project) buckets; the condition narrows objects."""
        base = self.resource_name(env)
        if self.kind == "project":
            inside = resource == base or resource.startswith(base + "/") or resource.startswith("projects/_/")
        else:
            inside = resource == base or resource.startswith(base + "/")
        if not inside or not self.prefixes:
            return inside
        return any(resource.startswith(f"{base}/objects/{prefix}") for prefix in self.prefixes)

    def describe(self) -> str:
        condition = f" if object name starts with {' or '.join(self.prefixes)}" if self.prefixes else ""
        return f"{self.role} on {self.ref}{condition} ({self.address})"


@lru_cache(maxsize=1)
def role_permissions() -> dict[str, frozenset[str]]:
    roles = json.loads((DATA / "roles.json").read_text())
    return {name: frozenset(role["includedPermissions"]) for name, role in roles.items()}


@lru_cache(maxsize=1)
def method_permissions() -> dict[str, frozenset[str]]:
    """API method -> the UNION of permissions it may check (never all required at once)."""
    apis = json.loads((DATA / "api_method_permissions.json").read_text())
    return {method: frozenset(perms) for methods in apis.values() for method, perms in methods.items()}


def _text(value: Any) -> str:
    if isinstance(value, list) and len(value) == 1:  # checkov's hcl2 fork wraps attribute values
        value = value[0]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value if isinstance(value, str) else json.dumps(value)


def _instances(address: str, body: dict[str, Any], locals_: dict[str, Any]) -> dict[str | None, Any]:
    """for_each key -> each.value, for the for_each forms iam.tf uses; no for_each: one instance."""
    spec = body.get("for_each")
    if spec is None:
        return {None: None}
    if isinstance(spec, list) and len(spec) == 1:
        spec = spec[0]
    if isinstance(spec, dict):
        return {_text(k): v for k, v in spec.items() if not k.startswith("__")}
    merged = re.fullmatch(r"\$\{merge\(local\.(\w+), \{(.*)\}\)\}", spec, re.S)
    if merged and isinstance(locals_.get(merged.group(1)), dict):
        found = {k: v for k, v in locals_[merged.group(1)].items() if not k.startswith("__")}
        found.update({k: f"${{local.sa.{v}}}" for k, v in re.findall(r"(\w+)\s*=\s*local\.sa\.(\w+)", merged.group(2))})
        return found
    raise PolicyError(f"{address}: for_each = {spec!r} is not a form the IAM reader knows")


def _resolve(address: str, expression: str, each: Any) -> str:
    """`${each.value}`, `${each.value.role}`, ... and literals, to their text."""
    field = re.fullmatch(r"\$\{each\.value(?:\.(\w+))?\}", expression)
    if not field:
        return expression
    value = each if field.group(1) is None else (each or {}).get(field.group(1))
    if value is None:
        raise PolicyError(f"{address}: {expression} has no value")
    return _text(value)


def _prefixes(address: str, body: dict[str, Any], key: str | None) -> tuple[str, ...]:
    conditions = [c for c in body.get("condition", []) if isinstance(c, dict)]
    if not conditions:
        return ()
    expression = _text(conditions[0].get("expression")).replace('\\"', '"')
    if "${each.key}" in expression:  # a prefix per for_each instance (its own quarantine/events/F/)
        if key is None:
            raise PolicyError(f"{address}: condition uses each.key without a for_each")
        expression = expression.replace("${each.key}", key)
    found = _PREFIX.findall(expression)
    rest = _PREFIX.sub("", expression).replace("||", "").strip()
    if not found or rest:
        raise PolicyError(f"{address}: condition {expression!r} is not a disjunction of object-name prefixes")
    return tuple(prefix for _, prefix in found)


def parse(text: str) -> list[Grant]:
    """Every grant of iam.tf's text to a function's account, on Cloud Storage, BigQuery or Pub/Sub."""
    import hcl2  # python-hcl2 (requirements-dev.txt); only the stack and the tests read Terraform

    document = hcl2.loads(text)
    locals_: dict[str, Any] = {}
    for block in document.get("locals", []):
        locals_.update(block)
    enforced = role_permissions()
    grants = []
    for block in document.get("resource", []):
        for quoted_type, named in block.items():
            rtype = _text(quoted_type)  # python-hcl2 >= 7 keeps the labels' quotes
            if rtype not in SCOPE_ATTRIBUTE:
                continue
            for quoted_name, body in named.items():
                name = _text(quoted_name)
                literal_role = _text(body.get("role"))
                if "${" not in literal_role and literal_role.split("/")[-1].split(".")[0] not in ENFORCED_SERVICES:
                    continue  # Cloud SQL, Secret Manager, Run, ...: not enforced locally (README)
                literal_member = _text(body.get("member"))
                if "each." not in literal_member and not re.search(r"local\.sa\.(?!trigger|build)", literal_member):
                    continue  # a service agent's or the trigger's identity: no function's
                for key, each in _instances(f"{rtype}.{name}", body, locals_).items():
                    address = f"{rtype}.{name}" + (f'["{key}"]' if key is not None else "")
                    member = _resolve(address, _text(body.get("member")), each)
                    account = re.fullmatch(r"\$\{local\.sa\.(\w+)\}", member)
                    if not account or account.group(1) not in FUNCTIONS:
                        continue  # the trigger, build and agent identities, or Cloud SQL's (member by email)
                    role = _resolve(address, _text(body.get("role")), each)
                    if role not in enforced:
                        raise PolicyError(f"{address}: role {role!r} is not in local/stack/iam_data/roles.json")
                    scope = _REF.fullmatch(_text(body.get(SCOPE_ATTRIBUTE[rtype])))
                    if not scope or scope.group(1) not in RESOURCE_SETTINGS:
                        raise PolicyError(f"{address}: {SCOPE_ATTRIBUTE[rtype]} = {body.get(SCOPE_ATTRIBUTE[rtype])!r}")
                    grants.append(Grant(address, account.group(1), role, scope.group(1), _prefixes(address, body, key)))
    return grants


_parsing = threading.Lock()


def load(path: str | None = None) -> tuple[Grant, ...]:
    """The grants of TAXI_IAM_TERRAFORM (a copy to experiment on) or infra/terraform/iam.tf."""
    with _parsing:  # python-hcl2's parser is not thread-safe: concurrent first calls misread iam.tf
        return _load(path or os.environ.get("TAXI_IAM_TERRAFORM") or str(IAM_TF))


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[Grant, ...]:
    return tuple(parse(Path(path).read_text()))


def granting(grants: tuple[Grant, ...] | list[Grant], function: str, permission: str, resource: str) -> list[Grant]:
    """The grants that give `function` `permission` on `resource` (empty: denied)."""
    perms = role_permissions()
    return [g for g in grants if g.function == function and permission in perms[g.role] and g.covers(resource)]
