"""Decide a function's call against the deployed IAM, record it, and answer a denial as Google does.

The model is LocalStack's IAM enforcement for AWS, for Google's IAM:
- `TAXI_IAM=enforce` (the stack's default): a call the function's deployed service account could not
  make fails with Google's 403 and a body naming the permission, so the code takes the path it would
  take in Google Cloud (a 403 is permanent: dead letter) and the test that made the call fails.
- `TAXI_IAM=soft`: the call proceeds; the violation is logged and recorded (LocalStack's soft mode).
- `TAXI_IAM=off`: nothing is checked or recorded.
- Every decision names function, API method, resource and the missing permission ("explainable IAM"),
  in the function's log and in the record `TAXI_IAM_RECORD` (default `$TAXI_STATE_DIR/iam`), one JSON
  line per distinct call per process, from which `python -m local.stack.iam_report` derives the least
  privilege the suite needed (LocalStack's policy stream) and the grants no call used.

Known defects not fixed on this branch are allowed by name in `KNOWN_DEFECTS` (recorded as
`allowlisted`, never silently): each entry names its issue and is removed with the fix.
`TAXI_IAM_ALLOWLIST=0` turns the list off, to show what it hides.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import threading
from pathlib import Path
from typing import Any

from local.stack import iam_policy
from local.stack.iam_requests import Call

MODES = ("enforce", "soft", "off")

# (function, API method, permission, resource prefix) -> why it is allowed for now. Remove with the fix.
KNOWN_DEFECTS: dict[tuple[str, str, str, str], str] = {
    # Empty: issue 20's defects 1 (load_bigquery's create_dataset) and 5 (the backfill's write under
    # quarantine/events/) were listed here until their fixes merged. An entry looks like
    # ("load_bigquery", "bigquery.datasets.insert", "bigquery.datasets.create", "projects/"): "issue N: why",
}


def _known_defect(function: str, method: str, permission: str, resource: str) -> str | None:
    for (who, what, needs, prefix), why in KNOWN_DEFECTS.items():
        if (who, what, needs) == (function, method, permission) and symbolic(resource).startswith(prefix):
            return why
    return None


class IamConfigError(ValueError):
    """TAXI_IAM holds a value that is no mode; names the variable and the value."""


@dataclasses.dataclass(frozen=True)
class Decision:
    function: str
    call: Call
    missing: tuple[tuple[str, str], ...]  # (permission, resource) no grant covers
    granted_by: tuple[str, ...]  # addresses of the grants that allowed the checks
    allowlisted: str | None = None

    @property
    def allowed(self) -> bool:
        return not self.missing

    def explain(self) -> str:
        if self.allowed:
            return f"{self.function} may call {self.call.method} on {self.call.resource}"
        lacks = "; ".join(f"{perm} on {res}" for perm, res in self.missing) or "an unmapped call is never granted"
        return (
            f"IAM denied: function {self.function} (its deployed service account) called {self.call.method} "
            f"on {self.call.resource} and lacks {lacks} (infra/terraform/iam.tf grants it: "
            f"{', '.join(sorted({g.role + ' on ' + g.ref for g in iam_policy.load() if g.function == self.function}))})"
        )


def mode() -> str:
    value = os.environ.get("TAXI_IAM", "off").strip().lower() or "off"
    if value not in MODES:
        raise IamConfigError(f"TAXI_IAM={value!r} must be one of {', '.join(MODES)}")
    return value


def decide(function: str, call: Call) -> Decision:
    grants = iam_policy.load()
    missing: list[tuple[str, str]] = []
    granted_by: set[str] = set()
    for permission, resource in call.checks:
        found = iam_policy.granting(grants, function, permission, resource)
        if found:
            granted_by.update(g.address for g in found)
        else:
            missing.append((permission, resource))
    if not call.checks:
        missing.append(("(no permission: the request maps to no known API method)", call.resource))
    allowlisted = None
    if missing and os.environ.get("TAXI_IAM_ALLOWLIST", "1") != "0":
        reasons = {_known_defect(function, call.method, permission, resource) for permission, resource in missing}
        if None not in reasons:
            allowlisted = "; ".join(sorted(r for r in reasons if r))
    return Decision(function, call, tuple(missing), tuple(sorted(granted_by)), allowlisted)


def _record_dir() -> Path | None:
    explicit = os.environ.get("TAXI_IAM_RECORD")
    if explicit:
        return Path(explicit)
    state = os.environ.get("TAXI_STATE_DIR")
    return Path(state) / "iam" if state else None


_seen: set[tuple[Any, ...]] = set()
_lock = threading.Lock()


def record(decision: Decision, outcome: str) -> None:
    """One JSON line per distinct decision in this process (every denial, each time)."""
    folder = _record_dir()
    if folder is None:
        return
    path = folder / f"calls-{os.getpid()}.jsonl"
    key = (decision.function, decision.call, outcome)
    with _lock:
        if not path.exists():
            _seen.clear()  # a new record (`test` clears it): every distinct call again
        if outcome == "allowed" and key in _seen:
            return
        _seen.add(key)
    line = {
        "function": decision.function,
        "method": decision.call.method,
        "resource": decision.call.resource,
        "checks": [list(c) for c in decision.call.checks],
        "symbolic": [[permission, symbolic(resource)] for permission, resource in decision.call.checks],
        "outcome": outcome,
        "missing": [list(m) for m in decision.missing],
        "granted_by": list(decision.granted_by),
        "allowlisted": decision.allowlisted,
        "tolerated": decision.call.tolerated,
        "pid": os.getpid(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(line, sort_keys=True) + "\n")


def symbolic(resource: str, env: Any = os.environ) -> str:
    """The resource with the names the settings give replaced by `{SETTING}`, as iam.tf names them:
    what the call needs in any stack (tests make their own buckets, datasets and topics)."""
    kinds = {"bucket": "buckets", "dataset": "datasets", "topic": "topics"}
    for kind, setting in iam_policy.RESOURCE_SETTINGS.values():
        value = env.get(setting)
        if not value:
            continue
        if kind == "project":
            resource = re.sub(rf"^projects/{re.escape(value)}(?=/|$)", f"projects/{{{setting}}}", resource)
        else:
            resource = re.sub(rf"/{kinds[kind]}/{re.escape(value)}(?=/|$)", f"/{kinds[kind]}/{{{setting}}}", resource)
    return resource


def check(function: str, call: Call) -> Decision | None:
    """Decide, log and record a call; returns the decision when the call must fail (enforce mode)."""
    current = mode()
    if current == "off":
        return None
    decision = decide(function, call)
    if decision.allowed:
        record(decision, "allowed")
        return None
    if decision.allowlisted:
        record(decision, "allowlisted")
        _log("iam_allowlisted", decision)
        return None
    record(decision, "denied" if current == "enforce" else "violation")
    if not decision.call.tolerated:
        _log("iam_denied" if current == "enforce" else "iam_violation", decision)
    return decision if current == "enforce" else None


def _log(event: str, decision: Decision) -> None:
    line = {
        "severity": "WARNING" if event != "iam_denied" else "ERROR",
        "event": event,
        "message": decision.explain(),
        "function": decision.function,
        "api_method": decision.call.method,
        "resource": decision.call.resource,
        "missing_permissions": [p for p, _ in decision.missing],
        "allowlisted": decision.allowlisted,
    }
    print(json.dumps(line), file=sys.stderr, flush=True)


def account(function: str, project: str) -> str:
    return f"{function.replace('_', '-')}@{project}.iam.gserviceaccount.com"


def error_body(decision: Decision) -> dict[str, Any]:
    """Google's 403 body for the first missing permission (the JSON APIs' error format)."""
    permission, resource = decision.missing[0]
    project = os.environ.get("GCP_PROJECT", "")
    if decision.call.method.startswith("storage."):
        message = (
            f"{account(decision.function, project)} does not have {permission} access to the Google Cloud "
            f"Storage object. Permission '{permission}' denied on resource (or it may not exist)."
        )
        reason, status = "forbidden", None
    else:
        parts = resource.split("/")
        if len(parts) == 2:
            what = f"Project {parts[1]}: User does not have {permission} permission in project {parts[1]}."
        elif len(parts) == 4:
            dataset = f"{parts[1]}:{parts[3]}"
            what = f"Dataset {dataset}: Permission {permission} denied on dataset {dataset} (or it may not exist)."
        else:
            table = f"{parts[1]}:{parts[3]}.{parts[5] if len(parts) > 5 else ''}"
            what = f"Table {table}: Permission {permission} denied on table {table} (or it may not exist)."
        message, reason, status = f"Access Denied: {what}", "accessDenied", "PERMISSION_DENIED"
    error: dict[str, Any] = {
        "code": 403,
        "message": message,
        # debugInfo is BigQuery's ErrorProto field for internal detail; here it holds the local why.
        "errors": [{"message": message, "domain": "global", "reason": reason, "debugInfo": decision.explain()}],
    }
    if status:
        error["status"] = status
    return {"error": error}
