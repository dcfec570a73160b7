# shellcheck shell=bash
# The two virtual environments, each rebuilt only when its requirements change:
#   .venv          project runtime + dev/test tools + benchmark baselines (requirements.txt,
#                  requirements-dev.txt, bench/requirements.txt)
#   .state/venv-bq the BigQuery emulator, whose dependencies pin old versions
# A venv is keyed on a hash of its requirements files and the Python version; the hash
# is written into the venv after a successful install, so an interrupted install redoes it.

BQ_REQUIREMENTS="$REPO_ROOT/local/requirements-bqemulator.txt"
BQ_HOME="$REPO_STATE_DIR/bigquery/home"   # HOME of the BigQuery emulator: DuckDB keeps extensions here

requirements_hash() {  # requirements_hash PYTHON FILE...
  { "$1" -c 'import sys; print(sys.version)'; shift; cat "$@"; } | sha256sum | cut -d' ' -f1
}

venv_up_to_date() {  # venv_up_to_date VENV HASH
  [[ -x "$1/bin/python" && -f "$1/.requirements.sha256" && "$(<"$1/.requirements.sha256")" == "$2" ]]
}

# build_venv VENV LOG HASH REQUIREMENTS...: create if missing, pip install, record the hash.
build_venv() {
  local venv="$1" log="$2" hash="$3"; shift 3
  local args=() file
  for file in "$@"; do args+=(-r "$file"); done
  {
    [[ -x "$venv/bin/python" ]] || "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/pip" install --disable-pip-version-check --no-input -q "${args[@]}"
  } >>"$log" 2>&1 || return 1
  echo "$hash" >"$venv/.requirements.sha256"
}

# Installs DuckDB's spatial extension from the pinned PyPI package into BQ_HOME, so the
# emulator finds it offline instead of downloading it at start.
install_bq_spatial_extension() {
  mkdir -p "$BQ_HOME"
  HOME="$BQ_HOME" "$BQ_VENV/bin/python" - <<'EOF'
import pathlib, duckdb, duckdb_extension_spatial
package = pathlib.Path(duckdb_extension_spatial.__file__).parent
files = sorted(package.glob(f"extensions/v{duckdb.__version__}/*.duckdb_extension"))
if not files:
    raise SystemExit(f"no spatial extension for duckdb {duckdb.__version__} in {package}: "
                     "pin duckdb and duckdb-extension-spatial to the same version")
duckdb.connect().execute(f"INSTALL '{files[0]}'")
EOF
}

# Brings both venvs up to date, in parallel when both need work.
ensure_venvs() {
  local py="${PYTHON:-python3}" main_hash bq_hash pids=() started
  command -v "$py" >/dev/null || die "$py not found: install Python 3.11 (apt-get install python3 python3-venv)"
  "$py" -c 'import venv, ensurepip' 2>/dev/null || die "Python's venv module is missing: apt-get install python3-venv"
  main_hash="$(requirements_hash "$py" "$REPO_ROOT/requirements.txt" "$REPO_ROOT/requirements-dev.txt" "$REPO_ROOT/bench/requirements.txt")"
  bq_hash="$(requirements_hash "$py" "$BQ_REQUIREMENTS")"
  mkdir -p "$LOG_DIR"
  if venv_up_to_date "$VENV" "$main_hash" && venv_up_to_date "$BQ_VENV" "$bq_hash"; then
    ensure_bq_spatial_extension
    return 0
  fi
  started="$(now)"
  if ! venv_up_to_date "$VENV" "$main_hash"; then
    say "installing .venv from requirements.txt, requirements-dev.txt, bench/requirements.txt (log: .state/logs/venv.log)"
    build_venv "$VENV" "$LOG_DIR/venv.log" "$main_hash" \
      "$REPO_ROOT/requirements.txt" "$REPO_ROOT/requirements-dev.txt" "$REPO_ROOT/bench/requirements.txt" &
    pids+=("$!:venv")
  fi
  if ! venv_up_to_date "$BQ_VENV" "$bq_hash"; then
    say "installing .state/venv-bq from local/requirements-bqemulator.txt (log: .state/logs/venv-bq.log)"
    build_venv "$BQ_VENV" "$LOG_DIR/venv-bq.log" "$bq_hash" "$BQ_REQUIREMENTS" &
    pids+=("$!:venv-bq")
  fi
  local entry failed=""
  for entry in "${pids[@]}"; do
    wait "${entry%%:*}" || { failed+=" ${entry#*:}"; show_log_tail "${entry#*:}"; }
  done
  [[ -z "$failed" ]] || die "installing the virtual environment(s)$failed failed (see .state/logs/)"
  ensure_bq_spatial_extension
  say "virtual environments ready in $(elapsed_since "$started")s"
}

ensure_bq_spatial_extension() {
  compgen -G "$BQ_HOME/.duckdb/extensions/*/*/spatial.duckdb_extension" >/dev/null && return 0
  install_bq_spatial_extension >>"$LOG_DIR/venv-bq.log" 2>&1 ||
    { show_log_tail venv-bq; die "installing DuckDB's spatial extension for the BigQuery emulator failed"; }
}
