# shellcheck shell=bash
# Shared by local_emulator.sh and the other local/stack/*.sh files: names, paths,
# ports, messages, readiness polling and the bookkeeping of the processes we start.

# TAXI_STATE_DIR puts a second stack's data, logs and pids elsewhere (the benchmark's throwaway
# stack, with its own TAXI_PORT_BASE); the virtual environments stay in the repository's .state.
REPO_STATE_DIR="$REPO_ROOT/.state"
STATE_DIR="${TAXI_STATE_DIR:-$REPO_STATE_DIR}"
LOG_DIR="$STATE_DIR/logs"
PID_DIR="$STATE_DIR/pids"
ENV_FILE="$STATE_DIR/env"
VENV="$REPO_ROOT/.venv"
BQ_VENV="$REPO_STATE_DIR/venv-bq"
PY="$VENV/bin/python"
GCS_ROOT="$STATE_DIR/gcs"

PROJECT=local-taxi
BUCKET=local-taxi-lake
BQ_DATASET_NAME=nyc_taxi
PG_DATABASE_NAME=ny_taxi
PG_USER_NAME=postgres
TOPIC_INGEST=taxi-ingest
TOPIC_BACKFILL=taxi-backfill
TOPIC_DEAD_LETTER=taxi-dead-letter
TOPIC_LAKE_EVENTS=taxi-lake-events
DEAD_LETTER_SUBSCRIPTION=taxi-dead-letter-sub  # local/stack/resources.py makes it
DEFAULT_PORT_BASE=19000

# name:signature:port offset, in start order (ports from the project contracts).
FUNCTIONS=(ingest:cloudevent:101 backfill:cloudevent:102 load_bigquery:cloudevent:103
           load_postgres:cloudevent:104 status:http:105 backfill_http:http:106)
# Every service `down` knows about, stopped in this order (the repair scheduler, the push relay, then the functions
# it delivers to, ..., the Pub/Sub emulator it pulls from last).
ALL_SERVICES=(repair relay fn-ingest fn-backfill fn-load_bigquery fn-load_postgres fn-status fn-backfill_http
              tlc gcs bqbridge bigquery postgres pubsub)

READY_TIMEOUT="${TAXI_READY_TIMEOUT:-120}"

say() { printf '%s\n' "$*" >&2; }
die() { printf 'local_emulator: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ---- ports ---------------------------------------------------------------

# The base comes from TAXI_PORT_BASE, else from the running stack, else the default.
resolve_ports() {
  local recorded=""
  if stack_running && [[ -f "$STATE_DIR/port_base" ]]; then
    recorded="$(<"$STATE_DIR/port_base")"
  fi
  if [[ -n "${TAXI_PORT_BASE:-}" ]]; then
    if [[ -n "$recorded" && "$recorded" != "$TAXI_PORT_BASE" ]]; then
      die "the stack is running with TAXI_PORT_BASE=$recorded, not $TAXI_PORT_BASE; run './local_emulator.sh down' first"
    fi
    PORT_BASE="$TAXI_PORT_BASE"
  else
    PORT_BASE="${recorded:-$DEFAULT_PORT_BASE}"
  fi
  [[ "$PORT_BASE" =~ ^[0-9]+$ ]] && ((PORT_BASE >= 1024 && PORT_BASE + 106 <= 65535)) ||
    die "TAXI_PORT_BASE=$PORT_BASE must be a number between 1024 and 65429"
  PORT_PUBSUB=$((PORT_BASE + 85))
  PORT_GCS=$((PORT_BASE + 43))
  PORT_BQ=$((PORT_BASE + 50))        # the BigQuery bridge (local/stack/bq_bridge.py): what clients use
  PORT_BQ_GRPC=$((PORT_BASE + 51))
  PORT_BQ_EMULATOR=$((PORT_BASE + 52))  # the emulator's REST port, behind the bridge
  PORT_PG=$((PORT_BASE + 32))
  PORT_TLC=$((PORT_BASE + 80))
}

function_port() {  # function_port NAME
  local entry
  for entry in "${FUNCTIONS[@]}"; do
    IFS=: read -r name _ offset <<<"$entry"
    [[ "$name" == "$1" ]] && { echo $((PORT_BASE + offset)); return 0; }
  done
  return 1
}

# require_ports_free PORT:WHAT...: one check for all of them; fails naming each port in
# use and the setting that moves them all.
require_ports_free() {
  local taken
  taken="$(python3 - "$@" <<'EOF'
import socket, sys
for spec in sys.argv[1:]:
    port, what = spec.split(":", 1)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", int(port)))
        except OSError:
            print(f"{port} ({what})")
EOF
)"
  [[ -z "$taken" ]] || die "port ${taken//$'\n'/, port } already in use by another program; set TAXI_PORT_BASE to move all the stack's ports (now $PORT_BASE, e.g. TAXI_PORT_BASE=$((PORT_BASE + 1000)))"
}

# ---- processes -------------------------------------------------------------

# Fields of /proc/PID/stat after the command name: state ppid pgrp ... (starttime is the 20th).
proc_stat_fields() {
  local line
  read -r line 2>/dev/null <"/proc/$1/stat" || return 1
  echo "${line##*) }"
}

# Start time of a live (not zombie) PID, to tell our process from a later one reusing its id.
proc_start_time() {
  local -a f
  read -r -a f <<<"$(proc_stat_fields "$1")" || return 1
  [[ ${#f[@]} -gt 19 && "${f[0]}" != Z ]] || return 1
  echo "${f[19]}"
}

service_pid() {  # prints the recorded pid if that very process still runs
  local file="$PID_DIR/$1.pid" pid started
  [[ -f "$file" ]] || return 1
  read -r pid started <"$file" || return 1
  [[ -n "$pid" && "$(proc_start_time "$pid")" == "$started" ]] || return 1
  echo "$pid"
}

service_alive() { service_pid "$1" >/dev/null; }

stack_running() {
  local name
  for name in "${ALL_SERVICES[@]}"; do service_alive "$name" && return 0; done
  return 1
}

# start_service NAME COMMAND...: runs in its own session (pid == process group id),
# output appended to .state/logs/NAME.log; the pid and start time go to .state/pids.
start_service() {
  local name="$1"; shift
  mkdir -p "$LOG_DIR" "$PID_DIR"
  printf '\n=== %s starting: %s\n' "$(date -Is)" "$*" >>"$LOG_DIR/$name.log"
  setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid $(proc_start_time "$pid")" >"$PID_DIR/$name.pid"
  [[ -n "${STACK_STARTED_FILE:-}" ]] && echo "$name" >>"$STACK_STARTED_FILE"
  return 0
}

# Is any process of group $1 left? Zombies do not count: PID 1 may be slow to reap them.
group_alive() {
  local file state _ppid pgrp
  kill -0 -- "-$1" 2>/dev/null || return 1
  for file in /proc/[0-9]*; do
    read -r state _ppid pgrp _ <<<"$(proc_stat_fields "${file#/proc/}")" || continue
    [[ "$pgrp" == "$1" && "$state" != Z ]] && return 0
  done
  return 1
}

# Stops the process groups of the named services: SIGTERM (SIGINT for PostgreSQL: its
# "fast" shutdown) to all at once, then SIGKILL to whatever is left after 20 s.
stop_services() {  # stop_services NAME...
  local name pid deadline
  local -A pids=()
  for name in "$@"; do
    if pid="$(service_pid "$name")"; then
      pids[$name]="$pid"
      if [[ "$name" == postgres ]]; then kill -INT -- "-$pid" 2>/dev/null || true
      else kill -TERM -- "-$pid" 2>/dev/null || true; fi
    fi
    rm -f "$PID_DIR/$name.pid"
  done
  deadline=$((SECONDS + 20))
  for name in "${!pids[@]}"; do
    pid="${pids[$name]}"
    while group_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    if group_alive "$pid"; then
      say "  $name did not stop in 20s: SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || true
      while group_alive "$pid"; do sleep 0.1; done
    fi
    say "  stopped $name (pid $pid)"
  done
}

# wait_ready NAME WHAT COMMAND...: polls COMMAND every 0.2 s until it succeeds; fails
# early if the service died, or after READY_TIMEOUT seconds, showing its log.
wait_ready() {
  local name="$1" what="$2"; shift 2
  local deadline=$((SECONDS + READY_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    if ! service_alive "$name"; then
      show_log_tail "$name"
      die "$what exited during start-up (log: .state/logs/$name.log)"
    fi
    if ((SECONDS >= deadline)); then
      show_log_tail "$name"
      die "$what not ready after ${READY_TIMEOUT}s (log: .state/logs/$name.log; TAXI_READY_TIMEOUT moves the limit)"
    fi
    sleep 0.2
  done
}

show_log_tail() {
  [[ -f "$LOG_DIR/$1.log" ]] || return 0
  say "---- last lines of .state/logs/$1.log"
  tail -n 40 "$LOG_DIR/$1.log" >&2
  say "----"
}

# Readiness probes.
tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
http_ok() { python3 - "$1" <<'EOF'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
EOF
}
