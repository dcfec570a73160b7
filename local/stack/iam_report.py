"""What the suite's calls needed of the deployed IAM: LocalStack's policy stream, for Google's IAM.

Reads the record local/stack/iam_enforce.py keeps (`$TAXI_STATE_DIR/iam/calls-*.jsonl`) and prints:
the distinct (function, API method) pairs exercised and how each was decided (all are: a call that
maps to no method is denied, never passed); every denial, violation, allowlisted or tolerated call;
the least privilege each function needed (permission on resource); and the grants of iam.tf that no
call needed, which are either to be removed or kept for a stated reason (`KEPT`).

    .venv/bin/python -m local.stack.iam_report [--record DIR] [--json] [--write-observed]

`--write-observed` adds the distinct calls to local/stack/iam_data/observed_calls.json, which
tests/unit/test_iam.py replays against iam.tf with each grant removed in turn. It merges: a record
of a few tests adds their calls and keeps the rest. `--replace` writes only this record's calls,
which drops calls the code no longer makes; use it after a whole-suite run only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from local.stack import iam_policy

OBSERVED = iam_policy.DATA / "observed_calls.json"

# Grants that no call of the suite needs, and why they stay (the report lists any other as removable).
KEPT: dict[str, str] = {
    'google_pubsub_topic_iam_member.backfills_publish_ingest["backfill_http"]': (
        "backfill_http publishes the ingest messages of a request without dry_run (README, Backfills); the "
        "suite drives that entry point only with dry_run: a gap in the tests, not a grant too many"
    ),
    **{
        f'google_storage_bucket_iam_member.dead_letters_store_large_events["{loader}"]': (
            f"{loader} keeps an original event over 1 MB under quarantine/events/{loader}/ when it dead-letters "
            "it (shared/core/runtime.py; issue 20 defect 5); a finalize notification that large needs custom "
            "metadata over 1 MB, which the suite's corpus does not build: a gap in the tests, not a grant too many"
        )
        for loader in ("load_bigquery", "load_postgres")
    },
}


# Object names generalised to the prefixes iam.tf's conditions use: the first folder, and a
# function's own folder under quarantine/events/ (issue 20 defect 5's grants are per function).
OBJECT_FAMILY = re.compile(r"/objects/(quarantine/events/[^/]+/|[^/]+/)?.*")


def read(folder: Path) -> list[dict[str, Any]]:
    entries = []
    for path in sorted(folder.glob("calls-*.jsonl")):
        entries += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return entries


def _pattern(resource: str) -> str:
    """A resource with its variable parts generalised: object names to prefixes, test-made names to *."""
    resource = re.sub(r"/buckets/[^/]+", "/buckets/LAKE", resource)
    resource = re.sub(r"/datasets/[^/]+", "/datasets/DATASET", resource)
    resource = re.sub(r"/tables/_staging_[^/]+", "/tables/_staging_*", resource)
    resource = OBJECT_FAMILY.sub(lambda m: f"/objects/{m.group(1) or ''}*", resource)
    return re.sub(r"/topics/it-stack-[^/]+", "/topics/it-stack-*", resource)


def summarise(entries: list[dict[str, Any]]) -> dict[str, Any]:
    pairs: dict[tuple[str, str], set[str]] = defaultdict(set)
    needed: dict[str, set[str]] = defaultdict(set)
    used_grants: set[str] = set()
    problems = set()
    for entry in entries:
        pairs[(entry["function"], entry["method"])].add(entry["outcome"])
        used_grants.update(entry["granted_by"])
        for permission, resource in entry["checks"]:
            needed[entry["function"]].add(f"{permission} on {_pattern(resource)}")
        if entry["outcome"] != "allowed":
            label = entry.get("tolerated") and "tolerated" or entry["outcome"]
            missing = ", ".join(f"{p} on {_pattern(r)}" for p, r in entry["missing"])
            problems.add(f"{label}: {entry['function']} {entry['method']} lacks {missing}")
    unused = [g for g in iam_policy.load() if g.address not in used_grants]
    return {
        "pairs": {f"{f} {m}": sorted(outcomes) for (f, m), outcomes in sorted(pairs.items())},
        "unmapped": sorted(f"{f} {m}" for f, m in pairs if m.startswith("unmapped")),
        "problems": sorted(problems),
        "least_privilege": {f: sorted(p) for f, p in sorted(needed.items())},
        "unused_grants": [{"grant": g.describe(), "kept_because": KEPT.get(g.address)} for g in unused],
    }


def observed(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The distinct calls the deployed IAM allowed, their resources named by setting (`{LAKE_BUCKET}`)."""
    seen = {}
    for entry in entries:
        if entry["outcome"] == "allowed" and "symbolic" in entry:
            checks = sorted(
                {(p, OBJECT_FAMILY.sub(lambda m: f"/objects/{m.group(1) or ''}*", r)) for p, r in entry["symbolic"]}
            )
            seen[(entry["function"], entry["method"], tuple(checks))] = {
                "function": entry["function"],
                "method": entry["method"],
                "checks": [list(c) for c in checks],
            }
    return [seen[key] for key in sorted(seen)]


def _key(call: dict[str, Any]) -> tuple[Any, ...]:
    return (call["function"], call["method"], tuple(tuple(c) for c in call["checks"]))


def merged(stored: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The union of two lists of observed calls, in one order (a partial run never deletes calls)."""
    union = {_key(call): call for call in [*stored, *new]}
    return [union[key] for key in sorted(union)]


def _stored() -> list[dict[str, Any]]:
    return list(json.loads(OBSERVED.read_text())) if OBSERVED.exists() else []


def render(summary: dict[str, Any]) -> str:
    lines = [f"distinct (function, API method) pairs exercised: {len(summary['pairs'])}, all checked"]
    lines += [f"  {pair}: {', '.join(outcomes)}" for pair, outcomes in summary["pairs"].items()]
    lines.append(f"unmapped requests (denied, fail closed): {len(summary['unmapped'])}")
    lines.append(f"calls refused or let through by name: {len(summary['problems'])}")
    lines += [f"  {p}" for p in summary["problems"]]
    lines.append("least privilege the calls needed (permission on resource):")
    for function, perms in summary["least_privilege"].items():
        lines.append(f"  {function}:")
        lines += [f"    {p}" for p in perms]
    lines.append(f"grants of iam.tf no call needed: {len(summary['unused_grants'])}")
    for grant in summary["unused_grants"]:
        lines.append(
            f"  {grant['grant']}: " + (f"kept: {grant['kept_because']}" if grant["kept_because"] else "REMOVE")
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = Path(os.environ.get("TAXI_IAM_RECORD") or Path(os.environ.get("TAXI_STATE_DIR", ".state")) / "iam")
    parser.add_argument("--record", type=Path, default=default)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--write-observed", action="store_true")
    parser.add_argument("--replace", action="store_true", help="with --write-observed: this record's calls only")
    args = parser.parse_args(argv)
    entries = read(args.record)
    if not entries:
        print(f"no IAM record in {args.record} (run the suite with TAXI_IAM=enforce or soft)", file=sys.stderr)
        return 1
    summary = summarise(entries)
    print(json.dumps(summary, indent=1) if args.json else render(summary))
    if args.write_observed:
        calls = observed(entries) if args.replace else merged(_stored(), observed(entries))
        OBSERVED.write_text(json.dumps(calls, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
