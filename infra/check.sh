#!/usr/bin/env bash
# Infrastructure checks that need no Google Cloud account and no provider download:
#   1. terraform fmt -check -recursive infra/terraform   (skipped, with a message, without terraform)
#   2. checkov over infra/terraform                       (any failed check fails; skips are inline)
#   3. the structural tests tests/infra (python-hcl2)     (entry points, identities, retries, IAM, settings)
# `terraform init/validate/plan` need the providers and run in Cloud Build (cloudbuild.yaml).
#
# Python tools live in their own virtual environment, INFRA_VENV (default .state/venv-infra),
# installed from requirements-infra.txt when missing or when that file changed.
# Every step runs; the script exits non-zero if any of them failed.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TF_DIR="$REPO/infra/terraform"
INFRA_VENV="${INFRA_VENV:-$REPO/.state/venv-infra}"
REQUIREMENTS="$REPO/requirements-infra.txt"
PY="$INFRA_VENV/bin/python"
REPORT_DIR="${INFRA_REPORT_DIR:-$REPO/.state/infra-check}"
failed=()

say() { printf '\n== %s\n' "$*"; }

ensure_venv() {
  local want have=""
  want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
  [ -f "$INFRA_VENV/.requirements.sha256" ] && have="$(cat "$INFRA_VENV/.requirements.sha256")"
  if [ -x "$PY" ] && [ "$want" = "$have" ]; then
    return 0
  fi
  say "installing $REQUIREMENTS into $INFRA_VENV"
  if [ ! -x "$PY" ]; then
    python3 -m venv "$INFRA_VENV" || return 1
  fi
  "$PY" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS" || return 1
  echo "$want" >"$INFRA_VENV/.requirements.sha256"
}

# --- 1. formatting ---------------------------------------------------------------------------------
say "terraform fmt -check -recursive infra/terraform"
if command -v terraform >/dev/null 2>&1; then
  # Formatting needs no CLI configuration; keep terraform quiet about a missing one.
  tf_rc="${TF_CLI_CONFIG_FILE:-$HOME/.terraformrc}"
  if [ ! -f "$tf_rc" ]; then
    export TF_CLI_CONFIG_FILE=/dev/null
  fi
  if terraform fmt -check -recursive -diff "$TF_DIR"; then
    echo "fmt: ok ($(terraform version | head -n1))"
  else
    echo "fmt: files above need 'terraform fmt -recursive infra/terraform'"
    failed+=("terraform fmt")
  fi
else
  echo "fmt: SKIPPED - the terraform binary is not installed here (Cloud Build runs it: cloudbuild.yaml)"
fi

if ! ensure_venv; then
  echo "could not install $REQUIREMENTS into $INFRA_VENV"
  exit 1
fi

# --- 2. checkov ------------------------------------------------------------------------------------
say "checkov -d infra/terraform"
mkdir -p "$REPORT_DIR"
rm -f "$REPORT_DIR/results_json.json"
# JSON to a file (the CLI report would list every passed check); the summary below prints every
# failure, every skip with its inline reason, and the counts.
"$INFRA_VENV/bin/checkov" --directory "$TF_DIR" --framework terraform --skip-download \
  --skip-path '\.terraform' --output json --output-file-path "$REPORT_DIR" >/dev/null
checkov_rc=$?
if [ -f "$REPORT_DIR/results_json.json" ]; then
  "$PY" - "$REPORT_DIR/results_json.json" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))
for report in data if isinstance(data, list) else [data]:
    s = report.get("summary", {})
    results = report.get("results", {})
    for check in results.get("failed_checks", []):
        lines = "-".join(str(n) for n in check.get("file_line_range", []))
        print(f"  FAILED  {check['check_id']} {check['check_name']}")
        print(f"          {check['resource']} ({check['file_path']}:{lines}) {check.get('guideline') or ''}")
    for check in results.get("skipped_checks", []):
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        print(f"  skipped {check['check_id']} on {check['resource']}: {reason}")
    print(f"checkov: passed {s.get('passed', 0)}, failed {s.get('failed', 0)}, skipped {s.get('skipped', 0)}"
          f" (checkov {s.get('checkov_version', '?')})")
EOF
else
  echo "checkov wrote no report (exit code $checkov_rc)"
  checkov_rc=1
fi
if [ "$checkov_rc" -ne 0 ]; then
  failed+=("checkov")
fi

# --- 3. structural tests -----------------------------------------------------------------------------
say "pytest tests/infra"
# --confcutdir: only tests/infra's own conftest, so the runtime test dependencies are never needed.
if ! (cd "$REPO" && "$PY" -m pytest -q -p no:cacheprovider --confcutdir="$REPO/tests/infra" "$REPO/tests/infra"); then
  failed+=("tests/infra")
fi

if [ "${#failed[@]}" -gt 0 ]; then
  say "infra checks FAILED: ${failed[*]}"
  exit 1
fi
say "infra checks passed"
