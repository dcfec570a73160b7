# shellcheck shell=bash
# The subcommands of local_emulator.sh.

# ---- up ------------------------------------------------------------------------

stack_fully_up() {
  local name
  for name in "${ALL_SERVICES[@]}"; do
    [[ "$name" == tlc ]] && ! tlc_server_available && continue
    service_alive "$name" || return 1
  done
  [[ -f "$ENV_FILE" ]]
}

# Starts whatever is not running (the emulators at once, the GCS emulator once the
# notification topic exists, then the functions, whose imports are CPU-heavy), waits for
# each to answer, creates the resources and prints the map.
cmd_up() {
  local started own_started_file=""
  started="$(now)"
  resolve_ports
  ensure_prereqs stack
  ensure_venvs
  mkdir -p "$LOG_DIR" "$PID_DIR"
  if [[ -z "${STACK_STARTED_FILE:-}" ]]; then  # else the caller (test) cleans up on failure
    own_started_file="$(mktemp)"
    export STACK_STARTED_FILE="$own_started_file"
    trap 'abort_up' EXIT
  fi
  write_env_file
  [[ -z "$ENV_CHANGED" ]] || restart_running_functions
  check_ports_of_stopped_services
  load_env_file
  service_alive pubsub || start_pubsub
  service_alive bigquery || start_bigquery
  service_alive bqbridge || start_bqbridge
  service_alive postgres || start_postgres
  service_alive tlc || start_tlc
  wait_pubsub
  "$PY" -m local.stack.resources topics || die "creating the Pub/Sub topics failed"
  service_alive gcs || start_gcs
  start_functions
  wait_gcs
  wait_bigquery
  wait_bqbridge
  wait_postgres
  wait_tlc
  "$PY" -m local.stack.resources all || die "creating the stack's resources failed"
  wait_functions
  service_alive relay || start_relay
  wait_relay
  service_alive repair || start_repair_scheduler
  wait_repair_scheduler
  if [[ -n "$own_started_file" ]]; then
    trap - EXIT
    rm -f "$own_started_file"
    unset STACK_STARTED_FILE
  fi
  print_stack_map "$(elapsed_since "$started")"
}

# Running functions and the relay keep the environment they started with (the relay: the
# function URLs): new settings need a restart.
restart_running_functions() {
  local entry name running=()
  if service_alive repair; then running+=(repair); fi
  if service_alive relay; then running+=(relay); fi
  for entry in "${FUNCTIONS[@]}"; do
    IFS=: read -r name _ _ <<<"$entry"
    if service_alive "fn-$name"; then running+=("fn-$name"); fi
  done
  ((${#running[@]} == 0)) && return 0
  say "settings changed: restarting the functions and the push relay"
  stop_services "${running[@]}"
}

check_ports_of_stopped_services() {
  local specs=() entry name offset
  service_alive pubsub || specs+=("$PORT_PUBSUB:Pub/Sub emulator")
  service_alive gcs || specs+=("$PORT_GCS:GCS emulator")
  service_alive bigquery || specs+=("$PORT_BQ_EMULATOR:BigQuery emulator REST" "$PORT_BQ_GRPC:BigQuery emulator gRPC")
  service_alive bqbridge || specs+=("$PORT_BQ:BigQuery bridge")
  service_alive postgres || specs+=("$PORT_PG:PostgreSQL")
  service_alive tlc || ! tlc_server_available || specs+=("$PORT_TLC:TLC file server")
  for entry in "${FUNCTIONS[@]}"; do
    IFS=: read -r name _ offset <<<"$entry"
    service_alive "fn-$name" || specs+=("$((PORT_BASE + offset)):function $name")
  done
  ((${#specs[@]} == 0)) || require_ports_free "${specs[@]}"
}

# On a failed `up`, stop what this `up` started, so nothing is left half-running.
abort_up() {
  local rc=$?
  trap - EXIT
  if [[ -n "${STACK_STARTED_FILE:-}" && -s "$STACK_STARTED_FILE" ]]; then
    say "up failed: stopping what it started (logs stay in .state/logs/)"
    stop_listed_services "$STACK_STARTED_FILE"
  fi
  rm -f "$STACK_STARTED_FILE"
  exit "$rc"
}

stop_listed_services() {  # stops the services named in FILE
  local name names=()
  for name in "${ALL_SERVICES[@]}"; do
    if grep -qx "$name" "$1"; then names+=("$name"); fi
  done
  ((${#names[@]} == 0)) || stop_services "${names[@]}"
}

print_stack_map() {
  local entry name signature
  cat <<EOF
local stack up in ${1}s (TAXI_PORT_BASE=$PORT_BASE, project $PROJECT)
  Pub/Sub emulator   127.0.0.1:$PORT_PUBSUB   topics $TOPIC_INGEST, $TOPIC_BACKFILL, $TOPIC_DEAD_LETTER, $TOPIC_LAKE_EVENTS
  GCS emulator       http://127.0.0.1:$PORT_GCS   bucket gs://$BUCKET (files in .state/gcs/$BUCKET)
  BigQuery emulator  http://127.0.0.1:$PORT_BQ (the bridge: partition decorators; emulator :$PORT_BQ_EMULATOR, gRPC $PORT_BQ_GRPC)   dataset $PROJECT.$BQ_DATASET_NAME
  PostgreSQL         127.0.0.1:$PORT_PG   database $PG_DATABASE_NAME, user $PG_USER_NAME (password: ./local_emulator.sh env)
EOF
  if tlc_server_available; then
    echo "  TLC file server    http://127.0.0.1:$PORT_TLC/   (files generated into .state/tlc)"
  fi
  echo "  source files       SOURCE_URL_TEMPLATE=$SOURCE_URL_TEMPLATE"
  echo "  functions (logs: ./local_emulator.sh logs NAME)"
  for entry in "${FUNCTIONS[@]}"; do
    IFS=: read -r name signature _ <<<"$entry"
    printf '    %-14s http://127.0.0.1:%s/  (%s)\n' "$name" "$(function_port "$name")" "$signature"
  done
  cat <<EOF
  push relay         pulls taxi-ingest-push -> ingest, taxi-backfill-push -> backfill,
                     taxi-lake-bigquery-push -> load_bigquery, taxi-lake-postgres-push -> load_postgres
                     and POSTs like Google's push: retried ${TAXI_RELAY_BACKOFF_SECONDS:-10,600}s exponential backoff
                     (Terraform's policy unless TAXI_RELAY_BACKOFF_SECONDS shortens it), after $MAX_DELIVERY_ATTEMPTS attempts
                     dead-lettered to $TOPIC_DEAD_LETTER (kept in taxi-dead-letter-sub); log: logs relay
  repair scheduler   every ${TAXI_REPAIR_INTERVAL_SECONDS}s {"repair":true,"from_ledger":true} to $TOPIC_BACKFILL,
                     as Terraform's repair job; log: logs repair
Use it:  eval "\$(./local_emulator.sh env)"; gcloud pubsub topics publish $TOPIC_INGEST --message='{"date":"2021-01-15","service":"yellow"}'
         ./local_emulator.sh run 2021-01-15 | status 2021-01-01 2021-01-31 | logs ingest | down
EOF
}

# ---- down ----------------------------------------------------------------------

cmd_down() {
  local clean="" file name
  [[ "${1:-}" == "--clean" ]] && clean=1
  [[ -z "${1:-}" || -n "$clean" ]] || die "usage: ./local_emulator.sh down [--clean]"
  local names=("${ALL_SERVICES[@]}")
  for file in "$PID_DIR"/*.pid; do  # anything recorded under another name too
    name="$(basename "$file" .pid)"
    if [[ -e "$file" && " ${names[*]} " != *" $name "* ]]; then names+=("$name"); fi
  done
  stop_services "${names[@]}"
  if [[ -n "$clean" ]]; then
    pg_clean
    rm -rf "$GCS_ROOT" "$STATE_DIR/bigquery/data" "$PG_STATE" "$STATE_DIR/tlc" "$LOG_DIR" \
      "$PID_DIR" "$ENV_FILE" "$STATE_DIR/port_base"
    say "state removed (.state/gcs, bigquery data, postgres, tlc files, logs); venvs kept"
  fi
  say "local stack is down"
}

# ---- env, logs -------------------------------------------------------------------

cmd_env() {
  resolve_ports
  if ! { stack_running && [[ -f "$ENV_FILE" ]]; }; then
    write_env_file
  fi
  cat "$ENV_FILE"
}

cmd_logs() {
  local name="${1:-}" file lines="${TAXI_LOG_LINES:-100}"
  if [[ -n "$name" ]]; then
    for file in "$LOG_DIR/fn-$name.log" "$LOG_DIR/$name.log"; do
      [[ -f "$file" ]] && { tail -n "${TAXI_LOG_LINES:-400}" "$file"; return 0; }
    done
    die "no log for '$name'; known: $(cd "$LOG_DIR" 2>/dev/null && ls -- *.log | sed 's/^fn-//; s/\.log$//' | tr '\n' ' ')"
  fi
  for file in "$LOG_DIR"/*.log; do  # the services' logs (pip's: ./local_emulator.sh logs venv)
    [[ -f "$file" && "$file" != */venv*.log ]] || continue
    printf '===== %s (last %s lines)\n' "${file#"$REPO_ROOT"/}" "$lines"
    tail -n "$lines" "$file"
  done
}

# ---- run, backfill, status -----------------------------------------------------------

valid_date() { [[ "$1" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] && date -d "$1" >/dev/null 2>&1; }
valid_service() { [[ "$1" =~ ^[a-z]+$ ]]; }

ensure_up() {
  resolve_ports
  stack_fully_up || cmd_up
  load_env_file
}

# Publishes with gcloud, exactly as the README tells a person to.
publish() {  # publish TOPIC JSON
  require_gcloud
  gcloud pubsub topics publish "$1" --message="$2" --project "$PROJECT" ||
    die "gcloud could not publish to $1 (is the Pub/Sub emulator up? ./local_emulator.sh logs pubsub)"
}

cmd_run() {
  local date="${1:-}" service="${2:-yellow}"
  valid_date "$date" && valid_service "$service" || die "usage: ./local_emulator.sh run YYYY-MM-DD [SERVICE]"
  ensure_up
  local since
  since="$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)"
  publish "$TOPIC_INGEST" "{\"date\":\"$date\",\"service\":\"$service\"}"
  "$PY" -m local.stack.wait_for_date --date "$date" --service "$service" --since "$since" \
    --timeout "${TAXI_RUN_TIMEOUT:-900}"
}

cmd_backfill() {
  local start="${1:-}" end="${2:-}" service="${3:-yellow}"
  valid_date "$start" && valid_date "$end" && valid_service "$service" ||
    die "usage: ./local_emulator.sh backfill START END [SERVICE]   (dates as YYYY-MM-DD)"
  ensure_up
  publish "$TOPIC_BACKFILL" "{\"start\":\"$start\",\"end\":\"$end\",\"service\":\"$service\"}"
  say "backfill requested; follow it with: ./local_emulator.sh status $start $end $service"
}

cmd_status() {
  local start="${1:-}" end="${2:-}" service="${3:-yellow}"
  valid_date "$start" && valid_date "$end" && valid_service "$service" ||
    die "usage: ./local_emulator.sh status START END [SERVICE]"
  resolve_ports
  service_alive fn-status || die "the stack is down: ./local_emulator.sh up"
  "$PY" - "http://127.0.0.1:$(function_port status)/" "$service" "$start" "$end" <<'EOF'
import sys, urllib.error, urllib.parse, urllib.request
url, service, start, end = sys.argv[1:]
query = urllib.parse.urlencode({"service": service, "start": start, "end": end, "format": "text"})
try:
    with urllib.request.urlopen(f"{url}?{query}", timeout=120) as response:
        sys.stdout.write(response.read().decode())
except urllib.error.HTTPError as error:
    sys.stderr.write(f"status function answered {error.code}: {error.read().decode()}\n")
    sys.exit(1)
EOF
}

# ---- replay, runs ----------------------------------------------------------------------

# Dead letters back to where they came from (shared/operate/replay.py), from the stack's dead-letter
# subscription; the same module replays in Google Cloud (README, "Replaying dead letters").
cmd_replay() {
  resolve_ports
  service_alive pubsub || die "the stack is down: ./local_emulator.sh up"
  load_env_file
  "$PY" -m shared.operate.replay_cli --subscription "$DEAD_LETTER_SUBSCRIPTION" "$@"
}

# One date's attempts from the run ledger (shared/core/ledger.py), newest last.
cmd_runs() {
  local date="${1:-}" service="${2:-yellow}"
  valid_date "$date" && valid_service "$service" || die "usage: ./local_emulator.sh runs YYYY-MM-DD [SERVICE]"
  resolve_ports
  service_alive gcs || die "the stack is down: ./local_emulator.sh up"
  load_env_file
  "$PY" -m local.stack.runs "$date" "$service"
}

# ---- lint: Python's own tools (configured in pyproject.toml) ----------------------------

# ruff (lint, then formatting) and mypy, from .venv; all three run, so one report shows every
# problem. Fast (seconds) and needs no stack: `test` runs it first for the whole suite.
cmd_lint() {
  ensure_venvs
  local rc=0
  say "running: ruff check, ruff format --check, mypy (pyproject.toml)"
  "$VENV/bin/ruff" check "$REPO_ROOT" || rc=1
  "$VENV/bin/ruff" format --check "$REPO_ROOT" || rc=1
  (cd "$REPO_ROOT" && "$VENV/bin/mypy") || rc=1
  ((rc == 0)) || say "lint failed: 'ruff check --fix .' and 'ruff format .' fix most of it (see README, Contributing)"
  return "$rc"
}

# ---- test ------------------------------------------------------------------------------

# Brings the stack up, runs pytest with its environment and TAXI_STACK=1, then stops
# exactly the services this command started (a stack that was already up stays up).
cmd_test() {
  ensure_prereqs stack test  # before anything starts: a missing Chromium fails here, not in a test
  TEST_STARTED_FILE="$(mktemp)"
  export STACK_STARTED_FILE="$TEST_STARTED_FILE"
  trap 'finish_test' EXIT
  # The suite shortens the relay's backoff explicitly (a failure settles in seconds); unset, the
  # relay uses Terraform's 10 s..600 s. An empty TAXI_RELAY_BACKOFF_SECONDS runs it with Terraform's.
  export TAXI_RELAY_BACKOFF_SECONDS="${TAXI_RELAY_BACKOFF_SECONDS-1,10}"
  export MAX_DELIVERY_ATTEMPTS="${MAX_DELIVERY_ATTEMPTS:-5}"  # Terraform's is 10: the suite's is shorter, explicitly
  cmd_up
  load_env_file
  export TAXI_STACK=1
  local infra_rc=0 lint_rc=0 rc=0
  if [[ $# -eq 0 ]]; then  # the whole suite: also ruff and mypy, terraform fmt and checkov
    cmd_lint || lint_rc=$?
    say "running: infra/check.sh"
    bash "$REPO_ROOT/infra/check.sh" || infra_rc=$?
  fi
  rm -rf "$STATE_DIR/iam"  # the record of this run's calls (local/stack/iam_enforce.py)
  # `test tests/unit/test_x.py -k y` runs that file; bare options (`test -x -k y`) run them on tests/.
  local where=(tests) arg
  for arg in "$@"; do
    [[ "$arg" != -* && -e "${arg%%::*}" ]] && where=() && break
  done
  say "running: .venv/bin/pytest ${where[*]} $*"
  "$VENV/bin/pytest" "${where[@]}" "$@" || rc=$?
  "$PY" -m local.stack.iam_report --record "$STATE_DIR/iam" >"$STATE_DIR/iam-report.txt" 2>&1 &&
    say "IAM: $(head -1 "$STATE_DIR/iam-report.txt") (.state/iam-report.txt)"
  if ((rc == 0 && lint_rc != 0)); then
    say "lint failed (exit $lint_rc): see its output above"
    rc=$lint_rc
  fi
  if ((rc == 0 && infra_rc != 0)); then
    say "infra/check.sh failed (exit $infra_rc): see its output above"
    rc=$infra_rc
  fi
  return "$rc"
}

finish_test() {
  local rc=$?
  trap - EXIT
  if [[ -s "$TEST_STARTED_FILE" ]]; then
    say "stopping the services this test run started"
    stop_listed_services "$TEST_STARTED_FILE"
  fi
  rm -f "$TEST_STARTED_FILE"
  ((rc == 5)) && say "pytest collected no tests (exit 5): counted as a failure"
  exit "$rc"
}
