"""Structural tests of infra/terraform, read with python-hcl2 (no provider, no cloud account).

They check what `terraform validate` cannot: that the deployment matches the code. Every entry
point in main.py has its function; each function runs as its own service account; every event
trigger retries; the buckets are never public; IAM is additive and never primitive; and each
function gets exactly the environment variables `shared.core.settings.env_vars_for(function)` lists.

The functions are one `for_each` resource over `local.functions`, so the checks run on each of its
instances: `each.key` and `each.value.<x>` are read from that literal map, a `dynamic` block counts
for the instances its condition selects, and the environment is `local.env.common` merged with the
`local.env` concerns the instance lists. An expression the reader does not know fails the test
rather than pass unread.

Needs only python-hcl2 (or checkov's fork of it, which installs the same `hcl2` module) and the
standard library; `shared/core/settings.py` imports nothing but `shared/core/errors.py`.
Set TERRAFORM_DIR to check another copy of the configuration.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 is not installed (pip install -r requirements-infra.txt)")

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from shared.core import settings as app_settings  # noqa: E402  (after the sys.path fix-up)
from shared.core.eras import FIRST_MONTH  # noqa: E402  (no pyarrow: the infra venv has none)

TF_DIR = Path(os.environ.get("TERRAFORM_DIR", REPO / "infra" / "terraform"))
MAIN_PY = REPO / "main.py"

# The contract's entry points, used only while main.py does not exist yet.
CONTRACT_ENTRY_POINTS = ("ingest", "backfill", "backfill_http", "load_bigquery", "load_postgres", "status")
HTTP_ENTRY_POINTS = {"backfill_http", "status"}
# Entry points that read the settings of another function (one settings profile, two triggers).
SETTINGS_PROFILE = {"backfill_http": app_settings.BACKFILL}
PRIMITIVE_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}
PUBLIC_MEMBERS = {"allUsers", "allAuthenticatedUsers"}
FUNCTION_TYPE = "google_cloudfunctions2_function"


# --- reading HCL, whichever python-hcl2 flavour is installed ---------------------------------------
# python-hcl2 >= 7 keeps string quotes ("\"x\"") and does not wrap attributes; checkov's fork
# (bc-python-hcl2) strips quotes and wraps every attribute value in a one-element list.


def _detect_wrapped() -> bool:
    probe = hcl2.loads('a = "b"\n')
    return isinstance(probe.get("a"), list)


WRAPPED = _detect_wrapped()


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    return value


def attr(body: dict[str, Any], name: str, default: Any = None) -> Any:
    """The value of attribute `name` of a block body."""
    if name not in body:
        return default
    value = body[name]
    if WRAPPED and isinstance(value, list) and len(value) == 1:
        value = value[0]
    return _unquote(value)


def blocks(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The nested blocks `name` of a block body (written out, not `dynamic`)."""
    found = body.get(name, [])
    return [b for b in found if isinstance(b, dict)]


def dynamic_contents(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The `content` bodies of `dynamic "<name>"` blocks."""
    out = []
    for dyn in blocks(body, "dynamic"):
        for label, spec in dyn.items():
            if _unquote(label) == name and isinstance(spec, dict):
                out.extend(blocks(spec, "content"))
    return out


def all_blocks(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return blocks(body, name) + dynamic_contents(body, name)


def truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


@dataclasses.dataclass(frozen=True)
class Resource:
    type: str
    name: str
    body: dict[str, Any]
    file: str

    @property
    def address(self) -> str:
        return f"{self.type}.{self.name}"


@dataclasses.dataclass(frozen=True)
class Instance:
    """A resource, or one instance of a resource whose for_each is a literal map (or a local holding
    one): `each.key` is `key` and `each.value` is `each` there."""

    resource: Resource
    key: str | None = None
    each: Any = None

    @property
    def address(self) -> str:
        return self.resource.address if self.key is None else f'{self.resource.address}["{self.key}"]'

    @property
    def body(self) -> dict[str, Any]:
        return self.resource.body

    def value(self, value: Any) -> Any:
        """`value`, or what it names if it is exactly `${each.key}`, `${each.value}` or `${each.value.x}`."""
        if self.key is None or not isinstance(value, str):
            return value
        if value == "${each.key}":
            return self.key
        match = re.fullmatch(r"\$\{each\.value(?:\.(\w+))?\}", value)
        if not match:
            return value
        if match.group(1) is None:
            return self.each
        assert isinstance(self.each, dict) and match.group(1) in self.each, (
            f"{self.address}: each.value.{match.group(1)} is not set in its for_each map"
        )
        return self.each[match.group(1)]

    def selects(self, for_each: Any) -> bool:
        """Whether a `dynamic` block whose for_each is `cond ? [...] : []` produces a block here. The
        parts of `cond` about the instance must be `each.value.x == "v"` or `contains(each.value.x, "v")`
        joined by &&; other parts (the deployment's variables) are taken as true, so a block that
        exists in some configuration is checked."""
        text = re.sub(r"[\s'\"]", "", str(for_each))
        condition = text.split("?", 1)[0] if "?" in text else ""
        if "each." not in condition:
            return True
        assert "||" not in condition, f"{self.address}: cannot read the dynamic block condition {for_each!r}"
        selected = True
        for part in condition.removeprefix("${").split("&&"):
            if "each." not in part:
                continue
            equal = re.fullmatch(r"each\.value\.(\w+)==(\w+)", part)
            member = re.fullmatch(r"contains\(each\.value\.(\w+),(\w+)\)", part)
            assert (equal or member) and self.key is not None, (
                f"{self.address}: cannot read the dynamic block condition {for_each!r}"
            )
            if equal:
                selected &= str(self.value(f"${{each.value.{equal.group(1)}}}")) == equal.group(2)
            else:
                selected &= member.group(2) in (self.value(f"${{each.value.{member.group(1)}}}") or [])
        return selected

    def blocks(self, body: dict[str, Any], name: str) -> list[dict[str, Any]]:
        """The `name` blocks of `body` in this instance: written out, and the contents of the `dynamic`
        blocks it selects, where `<name>.value` stands for the one element of their for_each list."""
        found = blocks(body, name)
        for dyn in blocks(body, "dynamic"):
            for label, spec in dyn.items():
                if _unquote(label) != name or not isinstance(spec, dict) or not self.selects(attr(spec, "for_each")):
                    continue
                element = re.search(r"\?\s*\[\s*'?(.*?)'?\s*\]\s*:\s*\[\s*\]\s*\}$", str(attr(spec, "for_each")))
                item = element.group(1) if element else None
                if item and not item.startswith("${"):
                    item = "${" + item + "}"
                found.extend(_replace(c, f"${{{name}.value}}", self.value(item)) for c in blocks(spec, "content"))
        return found


def _replace(value: Any, old: str, new: Any) -> Any:
    if isinstance(value, dict):
        return {k: _replace(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, old, new) for v in value]
    return new if _unquote(value) == old and new is not None else value


@dataclasses.dataclass
class Config:
    resources: list[Resource]
    variables: dict[str, dict[str, Any]]
    locals: dict[str, Any]

    def instances(self, type_: str) -> list[Instance]:
        """Every resource of `type_`, one Instance per key where its for_each is a readable map."""
        out = []
        for r in self.of_type(type_):
            for_each = self.resolve(attr(r.body, "for_each")) if "for_each" in r.body else None
            if isinstance(for_each, dict):
                out.extend(Instance(r, str(k), v) for k, v in for_each.items())
            else:
                out.append(Instance(r))
        return out

    def resolve(self, value: Any) -> Any:
        """Follow a value that is exactly `${local.name}` to that local's expression."""
        for _ in range(5):
            match = re.fullmatch(r"\$\{local\.(\w+)\}", str(value)) if isinstance(value, str) else None
            if not match or match.group(1) not in self.locals:
                return value
            value = attr(self.locals, match.group(1))
        return value

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def get(self, type_: str, name: str) -> Resource:
        for r in self.resources:
            if r.type == type_ and r.name == name:
                return r
        raise AssertionError(f"{type_}.{name} is not declared in {TF_DIR}")


def load_config(directory: Path) -> Config:
    resources: list[Resource] = []
    variables: dict[str, dict[str, Any]] = {}
    locals_: dict[str, Any] = {}
    files = sorted(directory.glob("*.tf"))
    assert files, f"no .tf files in {directory}"
    for path in files:
        with path.open() as fh:
            parsed = hcl2.load(fh)
        for group in parsed.get("resource", []):
            for type_, named in group.items():
                for name, body in named.items():
                    resources.append(Resource(_unquote(type_), _unquote(name), body, path.name))
        for group in parsed.get("variable", []):
            for name, body in group.items():
                variables[_unquote(name)] = body
        for group in parsed.get("locals", []):
            locals_.update({k: v for k, v in group.items() if not k.startswith("__")})
    return Config(resources, variables, locals_)


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(TF_DIR)


def main_entry_points() -> list[str]:
    """Public top-level functions of main.py, and names it imports (`from x import ingest`)."""
    if not MAIN_PY.exists():
        return list(CONTRACT_ENTRY_POINTS)
    tree = ast.parse(MAIN_PY.read_text(), filename=str(MAIN_PY))
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.append(node.name)
        elif isinstance(node, ast.ImportFrom):
            names.extend(alias.asname or alias.name for alias in node.names)
    return [n for n in names if not n.startswith("_") and n != "*"]


ENTRY_POINTS = main_entry_points()


def functions(config: Config) -> list[Instance]:
    """Every deployed function: each instance of each function resource."""
    found = config.instances(FUNCTION_TYPE)
    for fn in found:
        assert fn.key is not None or "for_each" not in fn.body, (
            f"{fn.address}: for_each must be a literal map, or a local holding one, for these checks to read it"
        )
    return found


def functions_by_entry_point(config: Config) -> dict[str, list[Instance]]:
    out: dict[str, list[Instance]] = {}
    for fn in functions(config):
        build = blocks(fn.body, "build_config")
        entry = fn.value(attr(build[0], "entry_point")) if build else None
        out.setdefault(entry, []).append(fn)
    return out


def function_for(config: Config, entry_point: str) -> Instance:
    found = functions_by_entry_point(config).get(entry_point, [])
    assert len(found) == 1, f"expected one {FUNCTION_TYPE} with entry_point {entry_point!r}, found {len(found)}"
    return found[0]


def service_config(fn: Resource | Instance) -> dict[str, Any]:
    sc = blocks(fn.body, "service_config")
    assert len(sc) == 1, f"{fn.address} needs exactly one service_config block"
    return sc[0]


def references(value: Any, type_: str) -> list[str]:
    """Names of `type_` resources referenced in an expression string."""
    return re.findall(rf"\b{re.escape(type_)}\.([A-Za-z0-9_-]+)", str(value))


# --- entry points --------------------------------------------------------------------------------------


def test_entry_points_are_read_from_main_py():
    assert ENTRY_POINTS, "no entry point found in main.py"
    assert len(set(ENTRY_POINTS)) == len(ENTRY_POINTS), f"duplicate entry points in main.py: {ENTRY_POINTS}"
    if MAIN_PY.exists():
        assert set(ENTRY_POINTS) >= {"ingest", "status"}, ENTRY_POINTS


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_every_entry_point_has_its_function_resource(config, entry_point):
    fn = function_for(config, entry_point)
    build = blocks(fn.body, "build_config")[0]
    assert config.resolve(attr(build, "runtime")) == "python312", f"{fn.address} must run python312"
    source = blocks(build, "source")
    assert source and blocks(source[0], "storage_source"), f"{fn.address} must build from the uploaded source zip"


def test_no_function_resource_without_an_entry_point_in_main(config):
    declared = functions_by_entry_point(config)
    unknown = sorted(str(k) for k in declared if k not in ENTRY_POINTS)
    assert not unknown, f"function resources whose entry_point is not in main.py: {unknown}"


# --- identities --------------------------------------------------------------------------------------------


def test_each_function_runs_as_its_own_service_account(config):
    accounts = {r.name for r in config.of_type("google_service_account")}
    seen: dict[str, str] = {}
    for fn in functions(config):
        email = fn.value(attr(service_config(fn), "service_account_email"))
        refs = references(email, "google_service_account")
        assert len(refs) == 1, f"{fn.address} must run as one declared google_service_account, got {email!r}"
        (account,) = refs
        assert account in accounts, f"{fn.address} uses undeclared google_service_account.{account}"
        assert account not in seen, f"{fn.address} shares google_service_account.{account} with {seen[account]}"
        seen[account] = fn.address
    assert len(seen) == len(functions(config)) >= len(ENTRY_POINTS)


def test_no_service_account_keys(config):
    assert not config.of_type("google_service_account_key"), "no service account keys: functions use their identity"


# --- triggers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_event_triggers_retry_and_http_functions_have_none(config, entry_point):
    fn = function_for(config, entry_point)
    triggers = fn.blocks(fn.body, "event_trigger")
    if entry_point in HTTP_ENTRY_POINTS or fn.value("${each.value.trigger}") == "lake":
        assert not triggers, f"{fn.address} is called by HTTP or a push subscription: no event trigger"
        return
    assert triggers, f"{fn.address} is an event function and needs an event_trigger"
    for trigger in triggers:
        assert attr(trigger, "retry_policy") == "RETRY_POLICY_RETRY", f"{fn.address}: event trigger must retry"
        assert references(attr(trigger, "service_account_email"), "google_service_account"), (
            f"{fn.address}: the trigger must run as a declared service account"
        )


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_only_http_functions_accept_outside_calls(config, entry_point):
    """The checkov skip of CKV_GCP_124 (ingress) sits on the one function resource, so it covers the
    event functions too: this keeps them internal."""
    fn = function_for(config, entry_point)
    ingress = fn.value(attr(service_config(fn), "ingress_settings"))
    if entry_point in HTTP_ENTRY_POINTS:
        assert ingress in ("ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"), f"{fn.address}: {ingress!r}"
    else:
        assert ingress == "ALLOW_INTERNAL_ONLY", (
            f"{fn.address} is an event function: ingress must be ALLOW_INTERNAL_ONLY"
        )


@pytest.mark.parametrize("entry_point,topic", [("ingest", "ingest"), ("backfill", "backfill")])
def test_pubsub_functions_listen_to_their_topic(config, entry_point, topic):
    if entry_point not in ENTRY_POINTS:
        pytest.skip(f"{entry_point} is not in main.py")
    fn = function_for(config, entry_point)
    (trigger,) = fn.blocks(fn.body, "event_trigger")
    assert attr(trigger, "event_type") == "google.cloud.pubsub.topic.v1.messagePublished"
    assert references(attr(trigger, "pubsub_topic"), "google_pubsub_topic") == [topic]


@pytest.mark.parametrize("entry_point", ["load_bigquery", "load_postgres"])
def test_loaders_are_woken_only_by_trips_partitions(config, entry_point):
    """A direct Cloud Storage trigger (Eventarc) filters on the bucket only, so each runs/, raw/, staging/
    and claim write would invoke both loaders (~12 per date), competing with real loads. The loaders
    have no event trigger: one GCS notification for trips/ finalizes feeds a push subscription each."""
    fn = function_for(config, entry_point)
    assert fn.blocks(fn.body, "event_trigger") == [], f"{fn.address} must not have a bucket-wide trigger"
    assert "loader_trigger" not in config.variables, "no setting may bring the bucket-wide trigger back"
    (note,) = config.of_type("google_storage_notification")
    assert "count" not in note.body and "for_each" not in note.body, "the notification always exists"
    assert attr(note.body, "object_name_prefix") == "trips/"
    assert as_list(attr(note.body, "event_types")) == ["OBJECT_FINALIZE"]
    assert references(attr(note.body, "bucket"), "google_storage_bucket") == ["lake"]
    assert references(attr(note.body, "topic"), "google_pubsub_topic") == ["lake_events"]
    (sub,) = [s for s in config.of_type("google_pubsub_subscription") if s.name == "loader"]
    assert references(attr(sub.body, "topic"), "google_pubsub_topic") == ["lake_events"]
    loaders = _flat(_local(config, "pubsub_loaders"))
    assert "fn.trigger == lake" in loaders and "loader_trigger" not in loaders, loaders
    assert fn.value("${each.value.trigger}") == "lake"


def test_pubsub_loader_wiring_has_dead_letter_policy(config):
    push = [s for s in config.of_type("google_pubsub_subscription") if blocks(s.body, "push_config")]
    assert push, "the loaders' push subscriptions must be declared"
    for sub in push:
        dlp = blocks(sub.body, "dead_letter_policy")
        assert dlp, f"{sub.address} needs a dead_letter_policy"
        assert references(attr(dlp[0], "dead_letter_topic"), "google_pubsub_topic") == ["dead_letter"]
        assert blocks(sub.body, "retry_policy"), f"{sub.address} needs a retry_policy (backoff)"
        (cfg,) = blocks(sub.body, "push_config")
        assert blocks(cfg, "oidc_token"), f"{sub.address} must push with an OIDC token"
    notes = config.of_type("google_storage_notification")
    assert notes and all(attr(n.body, "object_name_prefix") == "trips/" for n in notes)


def test_dead_letters_are_retained_for_inspection(config):
    subs = [
        s
        for s in config.of_type("google_pubsub_subscription")
        if references(attr(s.body, "topic"), "google_pubsub_topic") == ["dead_letter"]
    ]
    assert subs, "a subscription must keep the dead letters"
    assert any(attr(s.body, "message_retention_duration") for s in subs)


def test_the_daily_catch_up_asks_the_backfill_for_every_date_not_loaded_yet(config):
    """Issue 18, part 5: TLC publishes a month about two months late, so the schedule is a daily
    catch-up over the last catch_up_days (a `catch_up` backfill) rather than yesterday's date
    (tests/unit/test_awaiting_and_month_failure.py parses this message with the backfill contract)."""
    (job,) = [job for job in config.of_type("google_cloud_scheduler_job") if job.name == "daily_catch_up"]
    assert not [job for job in config.of_type("google_cloud_scheduler_job") if job.name == "daily_ingest"]
    assert attr(job.body, "schedule") == "${var.schedule_cron}"
    assert attr(job.body, "time_zone") == "${var.schedule_time_zone}"
    (target,) = blocks(job.body, "pubsub_target")
    assert references(attr(target, "topic_name"), "google_pubsub_topic") == ["backfill"]
    data = re.sub(r"[\s${}]+", "", _flat(attr(target, "data"))).replace(":", "=").lower()  # hcl2 versions differ
    for fragment in ("services=var.services", "last_days=var.catch_up_days", "catch_up=true"):
        assert fragment in data, f"the catch-up message must carry {fragment!r}: {data}"
    assert "var.catch_up_days>var.source_grace_days" in re.sub(r"\s+", "", _flat(job.body.get("lifecycle")))
    defaults = {name: attr(body, "default") for name, body in config.variables.items()}
    assert defaults.get("schedule_cron") == "0 5 * * *"
    assert defaults.get("schedule_time_zone") == "Etc/UTC"
    assert defaults["catch_up_days"] > defaults["source_grace_days"]
    assert '"catch_up"' in _source("core/messages.py"), "the backfill contract takes catch_up (tests/unit)"


def test_the_repair_job_sends_a_ledger_repair_with_its_schedule_to_the_backfill_topic(config):
    """The self-healing reaches every date the run ledger touched, not a window of recent days
    (issue 21, part 1), for every service, and carries its schedule (status's next repair); the
    local stack's scheduler publishes the same keys (local/stack/repair_scheduler.py)."""
    from local.stack import repair_scheduler
    from shared.core.schedule import parse_schedule

    (job,) = [job for job in config.of_type("google_cloud_scheduler_job") if job.name == "repair"]
    assert attr(job.body, "schedule") == "${var.repair_cron}"
    assert attr(job.body, "time_zone") == "${var.schedule_time_zone}"
    (target,) = blocks(job.body, "pubsub_target")
    assert references(attr(target, "topic_name"), "google_pubsub_topic") == ["backfill"]
    # Both HCL parsers' renderings: `repair = true` or `repair:True`, `var.x` or `${var.x}`.
    data = re.sub(r"[\s\"'${}]", "", str(attr(target, "data"))).lower()
    assert re.search(r"repair[=:]true", data) and re.search(r"from_ledger[=:]true", data), data
    assert re.search(r"schedule[=:]var\.repair_cron", data), data
    assert re.search(r"time_zone[=:]var\.schedule_time_zone", data), data
    assert "last_days" not in data, "a window of recent days never reaches a backfilled month"
    services = re.search(r"services[=:]\[([^\]]*)\]", data)
    assert services and set(services.group(1).split(",")) == set(FIRST_MONTH), data  # every service, fhvhv too
    local_keys = set(repair_scheduler.message(60, ["yellow"])) - {"time_zone"}
    assert all(re.search(rf"{key}[=:]", data) for key in local_keys), (local_keys, data)
    defaults = {name: attr(body, "default") for name, body in config.variables.items()}
    assert defaults.get("repair_cron") == "17 * * * *" and "repair_last_days" not in defaults
    parse_schedule(defaults["repair_cron"], defaults["schedule_time_zone"])  # status can read it back


def test_the_local_relay_retries_with_the_push_subscriptions_policy(config):
    """Terraform's push retry policy and dead-letter attempts are what the local relay uses by
    default (local/stack/resources.py; tests/unit/test_push_relay.py checks the run ledger's
    delivery budget against it) (issue 21, part 2)."""
    from local.stack import resources

    push = [s for s in config.of_type("google_pubsub_subscription") if blocks(s.body, "push_config")]
    for sub in push:
        (retry,) = blocks(sub.body, "retry_policy")
        assert attr(retry, "minimum_backoff") == f"{resources.MIN_BACKOFF_SECONDS:g}s"
        assert attr(retry, "maximum_backoff") == f"{resources.MAX_BACKOFF_SECONDS:g}s"
        assert attr(sub.body, "ack_deadline_seconds") == resources.ACK_DEADLINE_SECONDS
    defaults = {name: attr(body, "default") for name, body in config.variables.items()}
    assert defaults.get("max_delivery_attempts") == resources.TERRAFORM_MAX_DELIVERY_ATTEMPTS


# --- storage ------------------------------------------------------------------------------------------------


def test_buckets_enforce_public_access_prevention(config):
    buckets = config.of_type("google_storage_bucket")
    assert {b.name for b in buckets} >= {"lake"}, "the lake bucket must be declared"
    for bucket in buckets:
        assert attr(bucket.body, "public_access_prevention") == "enforced", f"{bucket.address} must enforce PAP"
        assert truthy(attr(bucket.body, "uniform_bucket_level_access")), f"{bucket.address} needs uniform access"


def lake_lifecycle_conditions(config: Config) -> list[dict[str, Any]]:
    lake = config.get("google_storage_bucket", "lake")
    return [cond for rule in all_blocks(lake.body, "lifecycle_rule") for cond in blocks(rule, "condition")]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def test_lake_is_versioned_with_lifecycle_for_raw_rejects_staging_and_runs(config):
    lake = config.get("google_storage_bucket", "lake")
    (versioning,) = blocks(lake.body, "versioning")
    assert truthy(attr(versioning, "enabled"))
    prefixes = {p for cond in lake_lifecycle_conditions(config) for p in as_list(attr(cond, "matches_prefix"))}
    assert {"raw/", "rejects/", "staging/", "runs/"} <= prefixes, f"lifecycle prefixes: {sorted(prefixes)}"
    (runs,) = [c for c in lake_lifecycle_conditions(config) if as_list(attr(c, "matches_prefix")) == ["runs/"]]
    assert attr(runs, "age") == "${var.runs_delete_after_days}"


def test_loaders_and_backfills_write_only_the_run_ledger(config):
    """The loaders and the backfills read the lake; their one write is their run ledger record
    (a loader's attempt, a backfill's `queued` date), under runs/."""
    writers = ("load_bigquery", "load_postgres", "backfill", "backfill_http")
    grants = [g for g in config.instances("google_storage_bucket_iam_member") if g.key in writers]
    writes = [g for g in grants if g.value(attr(g.body, "role")) != "roles/storage.objectViewer"]
    assert {g.key for g in writes} == set(writers), [g.address for g in grants]
    for grant in writes:
        (condition,) = blocks(grant.body, "condition")
        prefixes = _condition_prefixes(grant)
        allowed = {"runs/", f"quarantine/events/{grant.key}/"}
        assert prefixes and prefixes <= allowed, f"{grant.address} may write beyond {sorted(allowed)}: {prefixes}"


def _condition_prefixes(grant: Instance) -> set[str]:
    """The object-name prefixes a bucket grant's condition allows (resource.name.startsWith(...))."""
    (condition,) = blocks(grant.body, "condition")
    expression = _flat(grant.value(attr(condition, "expression")))
    found = re.findall(r"startsWith\(projects/_/buckets/\$\{[^}]+\}/objects/([^)]*)\)", expression)
    terms = [t for t in re.split(r"\|\|", expression) if t.strip()]
    assert len(found) == len(terms), f"{grant.address}: a condition term is not a prefix: {expression}"
    return {p.replace("${each.key}", grant.key or "") for p in found}


def test_functions_that_dead_letter_may_store_events_over_1_mb(config):
    """runtime.py keeps an event too large for a dead letter under quarantine/events/{function}/:
    every function that dead-letters (a publisher on the dead-letter topic) may create there,
    its own prefix only, and without that the dead letter fails and the event is retried."""
    assert "quarantine/events/{function}/" in _source("core/runtime.py")
    publishers = [
        g.key
        for g in config.instances("google_pubsub_topic_iam_member")
        if g.resource.name == "functions_publish_dead_letters"
    ]
    assert set(publishers) >= {"ingest", "backfill", "load_bigquery", "load_postgres"}, publishers
    creators = {"roles/storage.objectUser", "roles/storage.objectCreator", "roles/storage.objectAdmin"}
    for function in publishers:
        grants = [
            g
            for g in config.instances("google_storage_bucket_iam_member")
            if g.key == function and g.value(attr(g.body, "role")) in creators
        ]
        allowed = set()
        for grant in grants:
            if not blocks(grant.body, "condition"):
                allowed.add("")  # the whole bucket (ingest's objectUser)
            else:
                allowed |= _condition_prefixes(grant)
        prefix = f"quarantine/events/{function}/"
        assert any(prefix.startswith(p) for p in allowed), (
            f"{function} cannot create {prefix}*: it may create {allowed}"
        )


def test_staging_manifests_go_before_the_files_they_name(config):
    """ingest trusts a staged month whose _manifest.json exists and then reads its day files: the
    manifest must be deleted first, with a margin for the lifecycle's lag (up to a day)."""
    staging = [c for c in lake_lifecycle_conditions(config) if "staging/" in as_list(attr(c, "matches_prefix"))]
    manifests = [c for c in staging if as_list(attr(c, "matches_suffix")) == ["/_manifest.json"]]
    files = [c for c in staging if not attr(c, "matches_suffix")]
    assert len(manifests) == 1 and len(files) == 1, f"staging/ rules: {staging}"
    assert attr(manifests[0], "age") == "${var.staging_delete_after_days}"
    margin = re.fullmatch(r"\$\{var\.staging_delete_after_days\s*\+\s*(\d+)\}", str(attr(files[0], "age")))
    assert margin and int(margin.group(1)) >= 2, f"staging/ files must outlive their manifest by >= 2 days: {files[0]}"
    validations = blocks(config.variables["staging_delete_after_days"], "validation")
    assert any(">= 1" in str(attr(v, "condition")) for v in validations), "staging_delete_after_days must be >= 1"


def test_source_zip_leaves_out_dev_trees_and_is_named_by_its_hash(config):
    text = (TF_DIR / "storage.tf").read_text()
    parsed = hcl2.loads(text)
    archives = [
        body
        for group in parsed.get("data", [])
        for type_, named in group.items()
        if _unquote(type_) == "archive_file"
        for body in named.values()
    ]
    assert len(archives) == 1, "one archive_file zips the function source"
    excludes = set(attr(archives[0], "excludes") or [])
    assert {".git", ".venv", ".state", "tests", "infra", "bench", "local", "chaos"} <= excludes, sorted(excludes)
    objects = [o for o in config.of_type("google_storage_bucket_object")]
    assert objects and all("data.archive_file." in str(attr(o.body, "name")) for o in objects), (
        "the source object's name must carry the archive hash so a code change redeploys"
    )


# --- IAM ----------------------------------------------------------------------------------------------------------


def iam_resources(config: Config) -> Iterator[Resource]:
    return (r for r in config.resources if re.fullmatch(r"google_\w+_iam_(member|binding|policy)", r.type))


def test_iam_is_additive_only(config):
    authoritative = [r.address for r in iam_resources(config) if not r.type.endswith("_iam_member")]
    assert not authoritative, f"authoritative IAM (binding/policy) overwrites other grants: {authoritative}"


def test_no_primitive_or_public_grants(config):
    types = sorted({r.type for r in iam_resources(config) if r.type.endswith("_iam_member")})
    grants = [g for type_ in types for g in config.instances(type_)]
    assert len(grants) >= 20, "expected the per-function grants in iam.tf"
    for grant in grants:
        role = grant.value(attr(grant.body, "role"))
        assert isinstance(role, str) and role.startswith("roles/"), (
            f"{grant.address}: write the role as a literal predefined role (in the resource or its "
            f"literal for_each map) so it can be audited, got {role!r}"
        )
        assert role not in PRIMITIVE_ROLES, f"{grant.address} grants the primitive role {role}"
        member = str(grant.value(attr(grant.body, "member")))
        assert not any(p in member for p in PUBLIC_MEMBERS), f"{grant.address} grants {role} to the public"
    for var in ("invoker_members",):
        if var in config.variables:
            validations = blocks(config.variables[var], "validation")
            assert validations, f"variable {var} must be validated (no allUsers)"


# --- settings ----------------------------------------------------------------------------------------------------


def known_setting_vars() -> set[str]:
    return {f.metadata["env"] for f in dataclasses.fields(app_settings.Settings)}


def env_concerns(config: Config) -> dict[str, dict[str, Any]]:
    """local.env: the environment variables by concern, each a literal map."""
    groups = attr(config.locals, "env")
    assert isinstance(groups, dict) and all(isinstance(g, dict) for g in groups.values()), (
        f"local.env must be a literal map of literal maps (concern => variables), got {groups!r}"
    )
    return groups


def merged_env(config: Config, fn: Instance, expression: Any) -> dict[str, Any]:
    """The environment of `fn` from `merge(local.env.common, [for c in each.value.env : local.env[c]]...)`,
    plus per-function terms `contains(each.value.env, "<concern>") ? { NAME = value } : {}`."""
    text = re.sub(r"[\s'\"]", "", str(expression))
    concerns_term = re.search(r"\[for(\w+)ineach\.value\.env:local\.env\[\1\]\](\.\.\.)?", text)
    extra_terms = list(re.finditer(r"contains\(each\.value\.env,(\w+)\)\?\{(\w+)[=:](.*?)\}:\{\}", text))
    rest = text
    for term in [concerns_term, *extra_terms]:
        rest = rest.replace(term.group(0), "") if term else rest
    rest = rest.replace("local.env.common", "")
    assert concerns_term and "local.env.common" in text and re.fullmatch(r"\$\{merge\(,*\)\}", rest), (
        f"{fn.address}: cannot read environment_variables {expression!r}; write merge(local.env.common, "
        "<optional contains(each.value.env, ...) terms>, [for c in each.value.env : local.env[c]]...)"
    )
    groups = env_concerns(config)
    listed = fn.value("${each.value.env}")
    assert isinstance(listed, list), f"{fn.address}: each.value.env must be a literal list of concerns, got {listed!r}"
    unknown = [c for c in listed if c not in groups]
    assert not unknown, f"{fn.address}: unknown environment concerns {unknown} (local.env has {sorted(groups)})"
    env = dict(groups["common"])
    for concern in listed:
        env.update(groups[concern])
    for term in extra_terms:
        if term.group(1) in listed:
            env[term.group(2)] = term.group(3).replace("each.key", repr(fn.key))
    return env


def function_env(config: Config, fn: Instance) -> tuple[dict[str, Any], set[str]]:
    sc = service_config(fn)
    env = fn.value(attr(sc, "environment_variables")) or {}
    if not isinstance(env, dict):
        env = merged_env(config, fn, env)
    secrets = {attr(s, "key") for s in fn.blocks(sc, "secret_environment_variables")}
    return env, secrets


def test_each_environment_variable_is_written_once(config):
    groups = env_concerns(config)
    assert "common" in groups, "local.env needs the variables every function gets: common"
    seen: dict[str, str] = {}
    for concern, variables in groups.items():
        for name in variables:
            assert name not in seen, f"{name} is in local.env.{seen[name]} and local.env.{concern}"
            seen[name] = concern
    used = {c for fn in functions(config) if fn.key is not None for c in (fn.value("${each.value.env}") or [])}
    unused = sorted(set(groups) - used - {"common"})
    assert not unused, f"local.env concerns no function lists: {unused}"


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_every_setting_a_function_reads_is_set(config, entry_point):
    fn = function_for(config, entry_point)
    env, secrets = function_env(config, fn)
    wanted = app_settings.env_vars_for(SETTINGS_PROFILE.get(entry_point, entry_point))
    assert wanted, f"shared.core.settings lists no variable for {entry_point}"
    missing = [name for name in wanted if name not in env and name not in secrets]
    assert not missing, f"{fn.address} does not set {missing}"
    both = set(env) & secrets
    assert not both, f"{fn.address} sets {sorted(both)} both as plain and secret variables"
    empty = [k for k, v in env.items() if v in (None, "")]
    assert not empty, f"{fn.address} sets empty values for {empty}"


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_no_function_gets_settings_it_does_not_read(config, entry_point):
    fn = function_for(config, entry_point)
    env, secrets = function_env(config, fn)
    wanted = set(app_settings.env_vars_for(SETTINGS_PROFILE.get(entry_point, entry_point)))
    extra = sorted((set(env) | secrets) - wanted)
    assert not extra, f"{fn.address} sets {extra}, which shared/core/settings.py does not list for {entry_point}"


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_no_unknown_environment_variables(config, entry_point):
    env, secrets = function_env(config, function_for(config, entry_point))
    unknown = sorted((set(env) | secrets) - known_setting_vars())
    assert not unknown, f"not settings of shared/core/settings.py (typo?): {unknown}"


def test_password_only_from_secret_manager(config):
    for fn in functions(config):
        env, secrets = function_env(config, fn)
        assert "PG_PASSWORD" not in env, f"{fn.address}: PG_PASSWORD must come from Secret Manager"


@pytest.mark.parametrize(
    "name,type_,target",
    [
        ("LAKE_BUCKET", "google_storage_bucket", "lake"),
        ("DEAD_LETTER_TOPIC", "google_pubsub_topic", "dead_letter"),
        ("INGEST_TOPIC", "google_pubsub_topic", "ingest"),
        ("BQ_DATASET", "google_bigquery_dataset", None),
        ("CLOUD_SQL_INSTANCE", "google_sql_database_instance", None),
    ],
)
def test_settings_point_at_the_declared_resources(config, name, type_, target):
    checked = 0
    for fn in functions(config):
        env, _ = function_env(config, fn)
        if name not in env:
            continue
        value = config.resolve(env[name])
        refs = references(value, type_)
        assert refs, f"{fn.address}: {name} must come from a {type_}, got {env[name]!r}"
        if target:
            assert refs == [target], f"{fn.address}: {name} must be {type_}.{target}, got {refs}"
        checked += 1
    assert checked, f"no function sets {name}"


# --- Cloud SQL, variables ------------------------------------------------------------------------------------------


def test_cloud_sql_is_not_open_and_uses_iam_auth(config):
    for inst in config.of_type("google_sql_database_instance"):
        assert str(attr(inst.body, "database_version")).startswith("POSTGRES_")
        (settings,) = blocks(inst.body, "settings")
        for ip in blocks(settings, "ip_configuration"):
            for net in all_blocks(ip, "authorized_networks"):
                assert attr(net, "value") not in ("0.0.0.0/0", "::/0"), f"{inst.address} is open to the world"
        flags = {attr(f, "name"): attr(f, "value") for f in all_blocks(settings, "database_flags")}
        assert flags.get("cloudsql.iam_authentication") == "on"
        (backup,) = blocks(settings, "backup_configuration")
        assert truthy(attr(backup, "enabled"))
        assert "var." in str(attr(inst.body, "deletion_protection")), "deletion protection must be a variable"


def test_variables_are_typed_and_described(config):
    assert "project_id" in config.variables
    for name, body in config.variables.items():
        assert attr(body, "type") is not None, f"variable {name} needs a type"
        assert str(attr(body, "description") or "").strip(), f"variable {name} needs a description"


def test_outputs_name_topics_bucket_and_urls():
    text = (TF_DIR / "outputs.tf").read_text()
    outputs = set(re.findall(r'^output\s+"([^"]+)"', text, re.M))
    assert {"ingest_topic", "backfill_topic", "dead_letter_topic", "lake_bucket", "function_urls"} <= outputs


def test_parser_flavour_is_understood():
    """Guard the reader itself: a block and a map attribute come out as the tests expect."""
    parsed = hcl2.loads('resource "t" "n" {\n  m = { A = "x" }\n  b {\n    k = "v"\n  }\n}\n')
    (group,) = parsed["resource"]
    body = _unquote(json.loads(json.dumps(group)))["t"]["n"]
    assert attr(body, "m") == {"A": "x"}
    assert [attr(b, "k") for b in blocks(body, "b")] == ["v"]


def test_cloudbuild_checks_everything_and_applies_only_on_main():
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (checkov brings it)")
    build = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
    steps = {s["id"]: s for s in build["steps"]}
    script = {sid: " ".join(map(str, s.get("args", []))) for sid, s in steps.items()}
    assert any("pytest" in t and "tests/unit" in t for t in script.values()), "unit tests must run"
    assert any("fmt -check" in t for t in script.values()) and any(" validate" in t for t in script.values())
    (apply_id,) = [sid for sid, t in script.items() if "terraform" in t and " apply" in t]
    guard = script[apply_id]
    assert "$BRANCH_NAME" in guard and "${_DEPLOY_BRANCH}" in guard, "apply must be limited to the deploy branch"
    assert guard.index("$BRANCH_NAME") < guard.index(" apply "), "the branch check must come before the apply"
    assert build["substitutions"]["_DEPLOY_BRANCH"] == "main"
    assert {"_REGION", "_TF_STATE_BUCKET"} <= set(build["substitutions"])
    earlier = [sid for sid in steps if sid != apply_id]
    assert set(steps[apply_id].get("waitFor", [])) & set(earlier), "apply must wait for the checks"


def _tf_text_without_comments() -> str:
    """Every .tf file without comments."""
    out = []
    for path in sorted(TF_DIR.glob("*.tf")):
        for line in path.read_text().splitlines():
            out.append(re.sub(r"(^|\s)(#|//).*$", "", line))
    return "\n".join(out)


def test_every_reference_is_declared(config):
    """What `terraform validate` would catch first, checked without the providers: a typo in a name."""
    text = _tf_text_without_comments()
    parsed_data = [hcl2.loads(p.read_text()).get("data", []) for p in TF_DIR.glob("*.tf")]
    data_sources = {
        f"{_unquote(t)}.{_unquote(n)}"
        for groups in parsed_data
        for g in groups
        for t, named in g.items()
        for n in named
    }
    declared = {r.address for r in config.resources}
    missing = set()
    for name in set(re.findall(r"\bvar\.([A-Za-z_][\w-]*)", text)):
        if name not in config.variables:
            missing.add(f"var.{name}")
    for name in set(re.findall(r"\blocal\.([A-Za-z_][\w-]*)", text)):
        if name not in config.locals:
            missing.add(f"local.{name}")
    for type_, name in set(re.findall(r"\bdata\.([a-z0-9_]+)\.([A-Za-z_][\w-]*)", text)):
        if f"{type_}.{name}" not in data_sources:
            missing.add(f"data.{type_}.{name}")
    for type_, name in set(re.findall(r"(?<![\w.])((?:google|random|archive)_[a-z0-9_]+)\.([A-Za-z_][\w-]*)", text)):
        if f"{type_}.{name}" not in declared:
            missing.add(f"{type_}.{name}")
    assert not missing, f"referenced but not declared: {sorted(missing)}"


def test_google_provider_stays_on_the_checked_major():
    """The offline schema check validates hashicorp/google 6.50.0 (infra/terraform/README.md, Checks):
    the constraint must admit 6.50 and nothing of 7.x, which no check here can see."""
    parsed = hcl2.loads((TF_DIR / "versions.tf").read_text())
    (terraform,) = parsed["terraform"]
    providers: dict[str, Any] = {}
    for group in _unquote(terraform["required_providers"]):
        providers.update(group)
    google = attr(providers, "google")
    google = {"source": attr(google, "source"), "version": attr(google, "version")}
    assert google["source"] == "hashicorp/google"
    parts = [p.strip() for p in google["version"].split(",")]
    pessimistic = [re.fullmatch(r"~>\s*6\.(\d+)", p) for p in parts]
    upper = [re.fullmatch(r"<\s*7(\.0)*", p) for p in parts]
    lower = [re.fullmatch(r">=\s*6\.(\d+)(\.\d+)?", p) for p in parts]
    if any(pessimistic):
        (minor,) = [int(m.group(1)) for m in pessimistic if m]
    else:
        assert any(upper), f"google {google['version']!r} admits 7.x: add < 7.0 or use ~> 6.50"
        (minor,) = [int(m.group(1)) for m in lower if m]
    assert minor >= 50, f"google {google['version']!r} admits versions older than the checked 6.50"


# --- monitoring: log-based metrics, alerts, the dashboard (monitoring.tf) ----------------------------------

ALERT_TYPE = "google_monitoring_alert_policy"
LOG_METRIC_TYPE = "google_logging_metric"
MONITORING_VARIABLES = (
    "alert_notification_channels",
    "alert_email",
    "function_error_ratio_threshold",
    "freshness_deadline_hour_utc",
    "sql_disk_utilization_threshold",
    "sql_max_connections",
    "sql_connections_alert_ratio",
)


def _flat(value: Any) -> str:
    """An expression as text with the parser's escaping removed: quotes and backslashes dropped."""
    return re.sub(r"[\\\"']", "", json.dumps(value) if not isinstance(value, str) else value)


def _local(config: Config, name: str) -> Any:
    assert name in config.locals, f"local.{name} is not declared"
    return attr(config.locals, name)


def _source(*names: str) -> str:
    return "\n".join((REPO / "shared" / n).read_text() for n in names)


def test_every_alert_notifies_the_configured_channels(config):
    alerts = config.of_type(ALERT_TYPE)
    assert len(alerts) >= 5, "alerts: dead-letter backlog, function errors, freshness, Cloud SQL disk and connections"
    for alert in alerts:
        assert attr(alert.body, "notification_channels") == "${local.notification_channels}", (
            f"{alert.address} must notify local.notification_channels"
        )
        assert attr(alert.body, "combiner") == "OR" and blocks(alert.body, "documentation"), alert.address
    channels = _flat(_local(config, "notification_channels"))
    assert "var.alert_notification_channels" in channels
    assert "google_monitoring_notification_channel.email" in channels
    (email,) = config.of_type("google_monitoring_notification_channel")
    assert "var.alert_email" in str(attr(email.body, "count")) and attr(email.body, "type") == "email"


def test_function_logs_are_the_functions_stdout_on_cloud_run(config):
    logs_filter = _flat(_local(config, "function_logs"))
    assert "resource.type=cloud_run_revision" in logs_filter
    assert "run.googleapis.com%2Fstdout" in logs_filter, "functions log to stdout (shared/core/logs.py)"
    assert "resource.labels.service_name=" in logs_filter and "local.function_names" in logs_filter
    # The functions' names and the names the log filters and request metrics use are one local.
    for fn in functions(config):
        assert attr(fn.body, "name") == "${local.function_names[each.key]}", fn.address


@pytest.mark.parametrize(
    "name,fragments,source",
    [
        (
            "partition_written",
            ["jsonPayload.function=ingest", "jsonPayload.message=~^partition written"],
            ("ingest/day.py", '"partition written'),
        ),
        ("day_loaded", ["local.loader_success_messages", "jsonPayload.function=", "jsonPayload.message="], None),
        ("dead_lettered", ["severity=ERROR", "rejected the event: "], ("core/runtime.py", "rejected the event: ")),
        (
            "retried",
            ["severity=WARNING", "failed, will be retried: "],
            ("core/runtime.py", "failed, will be retried: "),
        ),
    ],
)
def test_log_filters_match_what_the_code_logs(config, name, fragments, source):
    filters = _local(config, "log_filters")
    assert name in filters, f"local.log_filters.{name} is not declared"
    text = _flat(filters[name])
    assert "local.function_logs" in text, f"local.log_filters.{name} must start from local.function_logs"
    for fragment in fragments:
        assert fragment in text, f"local.log_filters.{name} must contain {fragment!r}: {text}"
    if source:
        file, message = source
        assert message in _source(file), f"shared/{file} no longer logs {message!r}: update monitoring.tf"


def test_loader_success_messages_are_the_loaders_outcomes(config):
    messages = _local(config, "loader_success_messages")
    assert set(messages) == {"load_bigquery", "load_postgres"}
    assert f'"message": "{messages["load_bigquery"]}"' in _source("load/bigquery.py")
    assert f'"message": "{messages["load_postgres"]}"' in _source("load/postgres.py")


# metric resource -> (its filter in local.log_filters, value field or None for a counter, label fields)
LOG_METRICS = {
    "lake_rows": ("partition_written", "rows_written", {"service"}),
    "rejected_rows": ("partition_written", "rows_rejected", {"service"}),
    "loaded_rows": ("day_loaded", "rows", {"function", "service"}),
    "days_loaded": ("day_loaded", None, {"function", "service"}),
    "dead_lettered": ("dead_lettered", None, {"function", "reason", "service"}),
    "retried": ("retried", None, {"function", "reason"}),
}


@pytest.mark.parametrize("name", sorted(LOG_METRICS))
def test_log_metrics_read_the_structured_fields(config, name):
    metric = config.get(LOG_METRIC_TYPE, name)
    filter_name, value_field, labels = LOG_METRICS[name]
    assert attr(metric.body, "filter") == f"${{local.log_filters.{filter_name}}}"
    (descriptor,) = blocks(metric.body, "metric_descriptor")
    assert attr(descriptor, "metric_kind") == "DELTA"
    if value_field:
        assert attr(descriptor, "value_type") == "DISTRIBUTION"
        assert attr(metric.body, "value_extractor") == f"EXTRACT(jsonPayload.{value_field})"
        assert blocks(metric.body, "bucket_options"), f"{metric.address}: a distribution needs buckets"
    else:
        assert attr(descriptor, "value_type") == "INT64" and "value_extractor" not in metric.body
    declared = {attr(b, "key") for b in blocks(descriptor, "labels")}
    extractors = attr(metric.body, "label_extractors") or {}
    assert declared == set(extractors) == labels, f"{metric.address}: labels {declared} / extractors {set(extractors)}"
    for label, extractor in extractors.items():
        assert extractor == f"EXTRACT(jsonPayload.{label})", f"{metric.address}: label {label} from {extractor}"
    # The fields exist in what the functions log.
    code = _source("core/runtime.py", "load/partition.py", "ingest/day.py", "ingest/staging.py", "core/errors.py")
    for field in [f for f in (value_field, *labels) if f]:
        assert re.search(rf'["\']{field}["\']|\b{field}=', code), f"no function logs a {field!r} field"


def test_dashboard_shows_every_log_metric_and_the_backlog(config):
    (dashboard,) = config.of_type("google_monitoring_dashboard")
    assert "local.dashboard_widgets" in _flat(attr(dashboard.body, "dashboard_json"))
    widgets = _flat(_local(config, "dashboard_widgets"))
    for name in LOG_METRICS:
        assert f"google_logging_metric.{name}.name" in widgets or f"local.promql.{name}" in widgets, (
            f"the dashboard does not chart google_logging_metric.{name}"
        )
    assert "google_pubsub_subscription.dead_letter.name" in widgets and "num_undelivered_messages" in widgets
    assert "run.googleapis.com/request_count" in widgets, "function errors: Cloud Run's 5xx responses"
    promql = _flat(_local(config, "promql"))
    assert "logging_googleapis_com:user_" in promql and "local.metric_names" in promql
    for name in LOG_METRICS:
        assert attr(config.get(LOG_METRIC_TYPE, name).body, "name") == f"${{local.metric_names.{name}}}"


def _conditions(alert: Resource) -> list[str]:
    return [_flat(c) for c in blocks(alert.body, "conditions")]


def test_dead_letter_backlog_alert_watches_the_dead_letter_subscription(config):
    (condition,) = _conditions(config.get(ALERT_TYPE, "dead_letter_backlog"))
    assert "pubsub.googleapis.com/subscription/num_undelivered_messages" in condition
    assert "google_pubsub_subscription.dead_letter.name" in condition and "COMPARISON_GT" in condition


def test_function_error_alert_reads_dead_letters_and_5xx(config):
    conditions = " ".join(_conditions(config.get(ALERT_TYPE, "function_errors")))
    assert "google_logging_metric.dead_lettered.name" in conditions and "metric.label.function" in conditions
    assert "run.googleapis.com/request_count" in conditions and "response_code_class=5xx" in conditions
    assert "var.function_error_ratio_threshold" in conditions and "denominator_filter" in conditions


def test_freshness_alerts_judge_each_service_against_the_source_not_the_calendar(config):
    alert = config.get(ALERT_TYPE, "freshness")
    assert attr(alert.body, "for_each") == "${local.freshness}"
    freshness = re.sub(r"\s+", "", _flat(_local(config, "freshness")))
    assert "var.freshness_deadline_hour_utc==None" in freshness or "var.freshness_deadline_hour_utc==null" in freshness
    assert "var.schedule_paused" in freshness and "forserviceinvar.services" in freshness
    (condition,) = _conditions(alert)
    for fragment in (
        "local.promql.source_freshness",
        "each.value.service",
        'verdict="behind"'.replace('"', ""),
        "[25h]",
        "[26h]",
        "orvector(0)",
        "hour()>=${var.freshness_deadline_hour_utc}",
    ):
        assert fragment in re.sub(r"\s+", "", condition), f"freshness query must contain {fragment!r}"
    assert "days_loaded" not in condition, "freshness no longer counts days loaded against the calendar"
    metric = config.get(LOG_METRIC_TYPE, "source_freshness")
    filters = _flat(_local(config, "log_filters"))
    assert "^source freshness: " in filters, "the metric reads shared/operate/freshness.py's lines"
    assert "verdict" in _flat(attr(metric.body, "label_extractors"))
    assert '"source freshness: up to date with the source"' in _source("operate/freshness.py")


def test_cloud_sql_alerts_watch_this_instance(config):
    disk = " ".join(_conditions(config.get(ALERT_TYPE, "sql_disk")))
    assert "cloudsql.googleapis.com/database/disk/utilization" in disk and "var.sql_disk_utilization_threshold" in disk
    connections_alert = config.get(ALERT_TYPE, "sql_connections")
    connections = " ".join(_conditions(connections_alert))
    assert "cloudsql.googleapis.com/database/postgresql/num_backends" in connections
    assert "local.sql_connections_threshold" in connections
    assert "local.sql_database_id" in disk and "local.sql_database_id" in connections
    assert "google_sql_database_instance.postgres.name" in _flat(_local(config, "sql_database_id"))
    assert "var.sql_connections_alert_ratio" in _flat(_local(config, "sql_connections_threshold"))
    assert "precondition" in _flat(connections_alert.body.get("lifecycle")), (
        "an unknown max_connections must stop the plan, not make a threshold of null"
    )


@pytest.mark.parametrize("name", MONITORING_VARIABLES)
def test_monitoring_variables_are_validated(config, name):
    assert name in config.variables, f"variable {name} is not declared"
    assert blocks(config.variables[name], "validation") or attr(config.variables[name], "validation"), (
        f"variable {name} needs a validation block"
    )


def test_monitoring_apis_are_enabled(config):
    apis = _flat(_local(config, "apis"))
    assert "monitoring.googleapis.com" in apis and "logging.googleapis.com" in apis


def test_xychart_thresholds_set_neither_direction_nor_color(config):
    """monitoring.v1 Threshold: `color` and `direction` are "not allowed in a XyChart" (the API
    rejects the dashboard); an xyChart threshold is its value (and label, targetAxis) only."""
    charts = [w["xyChart"] for w in _local(config, "dashboard_widgets") if isinstance(w, dict) and "xyChart" in w]
    assert charts, "the dashboard has xyCharts"
    for chart in charts:
        thresholds = _flat(chart.get("thresholds", []))
        for forbidden in ("direction", "color"):
            assert forbidden not in thresholds, f"an xyChart threshold sets {forbidden}: {thresholds}"


# --- the first apply in one pass (issue 20: propagation waits and orderings) -------------------------


def _depends_on(resource: Resource) -> list[str]:
    return [re.sub(r"^\$\{(.*)\}$", r"\1", _flat(d)) for d in as_list(attr(resource.body, "depends_on") or [])]


def _required_providers() -> dict[str, Any]:
    with (TF_DIR / "versions.tf").open() as fh:
        parsed = hcl2.load(fh)
    (terraform,) = parsed["terraform"]
    (providers,) = blocks(terraform, "required_providers")
    return {_unquote(k): attr(providers, k) for k in providers if not k.startswith("__")}


def test_the_time_provider_is_pinned_for_the_propagation_waits():
    time = _required_providers().get("time")
    assert time, "hashicorp/time (time_sleep) is a required provider"
    assert _unquote(time["source"]) == "hashicorp/time" and _unquote(time["version"]).startswith("~> ")


def test_the_freshness_promql_condition_skips_metric_validation(config):
    """Its log-based metric is created in the same apply and is unknown to Monitoring for up to
    10 minutes: a validated PromQL condition fails the apply ("Cannot find metric(s)")."""
    alert = config.get(ALERT_TYPE, "freshness")
    (condition,) = blocks(alert.body, "conditions")
    (promql,) = blocks(condition, "condition_prometheus_query_language")
    assert attr(promql, "disable_metric_validation") is True


def test_alerts_on_log_based_metrics_wait_for_the_metrics_to_propagate(config):
    """An alert whose condition names a logging.googleapis.com/user metric is created only after
    time_sleep.log_metrics has waited, and that wait starts only once every such metric exists."""
    (wait,) = [r for r in config.of_type("time_sleep") if r.name == "log_metrics"]
    assert attr(wait.body, "create_duration") == "${var.log_metric_propagation_wait}"
    metric_names = {m.name for m in config.of_type(LOG_METRIC_TYPE)}
    waited_for = {d.split(".")[1] for d in _depends_on(wait) if d.startswith(f"{LOG_METRIC_TYPE}.")}
    triggers = _flat(attr(wait.body, "triggers"))
    users = [
        a
        for a in config.of_type(ALERT_TYPE)
        if "logging.googleapis.com/user" in _flat(a.body) or "promql." in _flat(a.body)
    ]
    assert {a.name for a in users} >= {"function_errors", "freshness"}, [a.name for a in users]
    for alert in users:
        assert "time_sleep.log_metrics" in _depends_on(alert), f"{alert.address} does not wait for its metrics"
        named = {
            m
            for m in metric_names
            if f"google_logging_metric.{m}." in _flat(alert.body) or f"promql.{m}" in _flat(alert.body)
        }
        assert named, alert.address
        assert named <= waited_for | {m for m in metric_names if f"google_logging_metric.{m}." in triggers}, (
            f"{alert.address} uses metrics the wait does not wait for: {named - waited_for}"
        )


def test_event_functions_wait_for_the_service_agents_grants_to_propagate(config):
    """On a new project the event triggers fail to create while the Eventarc, Pub/Sub and Cloud Storage
    service agents' grants propagate (hashicorp/terraform-provider-google#25294): every function
    waits for time_sleep.service_agents, which waits for the APIs and every grant to a service agent."""
    (wait,) = [r for r in config.of_type("time_sleep") if r.name == "service_agents"]
    assert attr(wait.body, "create_duration") == "${var.service_agent_propagation_wait}"
    waits_for = set(_depends_on(wait))
    assert "google_project_service.apis" in waits_for
    agent_grants = {
        f"{r.type}.{r.name}"
        for r in config.resources
        if r.type.endswith("_iam_member")
        and re.search(r"service_agent|storage_project_service_account", _flat(r.body))
        and "google_pubsub_subscription.loader" not in _flat(r.body)  # made after the functions, by design
    }
    agent_grants.add("google_project_iam_member.trigger_receives_events")
    assert agent_grants and agent_grants <= waits_for, f"not waited for: {sorted(agent_grants - waits_for)}"
    (function,) = config.of_type(FUNCTION_TYPE)
    assert "time_sleep.service_agents" in _depends_on(function)


def test_the_day_one_runbook_names_every_wait_and_how_to_roll_back(config):
    """infra/terraform/README.md's day-one runbook stays in step with the waits it explains."""
    readme = (TF_DIR / "README.md").read_text()
    assert "## Day one: the runbook" in readme
    runbook = readme.split("## Day one: the runbook", 1)[1].split("\n## ", 1)[0]
    for wait in config.of_type("time_sleep"):
        variable = re.fullmatch(r"\$\{var\.(\w+)\}", str(attr(wait.body, "create_duration")))
        assert variable and variable.group(1) in config.variables, wait.address
        assert f"time_sleep.{wait.name}" in runbook and f"`{variable.group(1)}`" in runbook, wait.address
        default = _unquote(attr(config.variables[variable.group(1)], "default"))
        assert f"{variable.group(1)}`, {default})" in runbook, f"the runbook gives {variable.group(1)}'s default"
    for step in ("terraform init", "terraform plan", "terraform apply", "status_url", "scheduler jobs", "Roll back"):
        assert step in runbook, step
