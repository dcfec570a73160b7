# shellcheck shell=bash
# PostgreSQL (stands in for Cloud SQL). initdb refuses to run as root, so the server runs
# as the unprivileged `postgres` user, TCP on 127.0.0.1 only (no Unix socket), with
# scram-sha-256 password auth. The password is generated once into .state/postgres/password
# (never in the repo, printed only by `./local_emulator.sh env`).

PG_STATE="$STATE_DIR/postgres"
PG_PASSWORD_FILE="$PG_STATE/password"

pg_bin_dir() {
  local dir
  for dir in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    [[ -x "$dir/initdb" && -x "$dir/postgres" ]] && { echo "$dir"; return 0; }
  done
  return 1
}

require_postgres() {
  PG_BIN="$(pg_bin_dir)" ||
    die "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin): apt-get install postgresql"
  id -u postgres >/dev/null 2>&1 ||
    die "no 'postgres' user to run the server as: apt-get install postgresql (creates it)"
  if [[ "$(id -u)" == 0 ]]; then
    PG_RUN=(runuser -u postgres --)
  elif [[ "$(id -un)" == postgres ]]; then
    PG_RUN=()
  else
    PG_RUN=(sudo -n -u postgres --)
  fi
}

# The data directory lives in .state unless the postgres user cannot reach it (a clone
# under a private home directory); then under /var/tmp, recorded in .state.
pg_data_dir() {
  if [[ -f "$PG_STATE/data-location" ]]; then
    cat "$PG_STATE/data-location"
  elif "${PG_RUN[@]}" test -x "$PG_STATE"; then
    echo "$PG_STATE/data"
  else
    echo "/var/tmp/taxi-stack-$(echo "$REPO_ROOT" | sha256sum | cut -c1-12)/postgres-data"
  fi
}

pg_password() {
  if [[ ! -s "$PG_PASSWORD_FILE" ]]; then
    mkdir -p "$PG_STATE"
    (umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(24))' >"$PG_PASSWORD_FILE")
  fi
  cat "$PG_PASSWORD_FILE"
}

init_postgres() {
  local data="$1" pwfile
  if [[ -f "$data/PG_VERSION" ]]; then
    [[ -s "$PG_PASSWORD_FILE" ]] ||
      die "$data exists but its password file .state/postgres/password is gone; run './local_emulator.sh down --clean'"
    return 0
  fi
  say "initialising PostgreSQL in $data"
  mkdir -p "$data"
  chmod 755 "$PG_STATE"
  [[ "$(id -u)" == 0 ]] && chown postgres:postgres "$data"
  chmod 700 "$data"
  pwfile="$(mktemp)"
  pg_password >"$pwfile"
  [[ "$(id -u)" == 0 ]] && chown postgres "$pwfile"
  if ! "${PG_RUN[@]}" "$PG_BIN/initdb" -D "$data" -U "$PG_USER_NAME" --pwfile="$pwfile" \
      --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --no-locale \
      >>"$LOG_DIR/postgres.log" 2>&1; then
    rm -f "$pwfile"
    show_log_tail postgres
    die "initdb failed (log: .state/logs/postgres.log)"
  fi
  rm -f "$pwfile"
  [[ "$data" == "$PG_STATE/data" ]] || echo "$data" >"$PG_STATE/data-location"
}

start_postgres() {
  require_postgres
  mkdir -p "$PG_STATE" "$LOG_DIR"
  local data
  data="$(pg_data_dir)"
  init_postgres "$data"
  start_service postgres "${PG_RUN[@]}" "$PG_BIN/postgres" -D "$data" \
    -c listen_addresses=127.0.0.1 -c port="$PORT_PG" -c unix_socket_directories= \
    -c log_min_messages=warning -c max_connections=100
}

pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT_PG"; }

wait_postgres() {
  require_postgres
  wait_ready postgres "PostgreSQL on 127.0.0.1:$PORT_PG" pg_ready
}

pg_clean() {  # the data directory outside .state, if it had to be put there
  local data=""
  [[ -f "$PG_STATE/data-location" ]] && data="$(<"$PG_STATE/data-location")"
  if [[ "$data" == /var/tmp/taxi-stack-*/postgres-data ]]; then rm -rf "$(dirname "$data")"; fi
  return 0
}
