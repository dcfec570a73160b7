#!/usr/bin/env bash
# The one entry point for local work: the whole pipeline on this machine, against real
# emulators (Pub/Sub, fake-gcs-server, a BigQuery emulator), a real PostgreSQL and the
# functions served by functions-framework. No Google Cloud account, no internet.
#
#   ./local_emulator.sh up                       start everything (idempotent; fast when built)
#   ./local_emulator.sh run DATE [SERVICE]       publish one date and wait until it is in GCS,
#                                                BigQuery and Postgres; print a summary
#   ./local_emulator.sh backfill START END [SERVICE]   publish a backfill request
#   ./local_emulator.sh status START END [SERVICE]     the status function's text report
#   ./local_emulator.sh replay [--reason R] [--function F] [--service S] [--date D] [--dry-run]
#                                                dead letters back to their topics (shared/operate/replay.py)
#   ./local_emulator.sh runs DATE [SERVICE]      one date's attempts from the run ledger
#   ./local_emulator.sh logs [NAME]              logs of a function (ingest, ...) or emulator
#   ./local_emulator.sh env                      export lines: eval "$(./local_emulator.sh env)"
#   ./local_emulator.sh test [PYTEST ARGS]       up, run the test suite, stop what it started
#                                                (the whole suite: lint and infra/check.sh too)
#   ./local_emulator.sh lint                     ruff check, ruff format --check, mypy
#   ./local_emulator.sh prereqs                  check (as root: apt-get install) what the machine needs
#   ./local_emulator.sh down [--clean]           stop everything (--clean: delete the data too)
#
# Ports: TAXI_PORT_BASE (default 19000) + fixed offsets; state, logs and pids in .state/.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$REPO_ROOT"
for part in common prereqs venvs postgres services commands; do
  # shellcheck source=/dev/null
  source "$REPO_ROOT/local/stack/$part.sh"
done

usage() { sed -n '2,22p' "$REPO_ROOT/local_emulator.sh" | sed 's/^# \{0,1\}//'; }

main() {
  local command="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$command" in
    up) cmd_up ;;
    down) cmd_down "$@" ;;
    env) cmd_env ;;
    logs) cmd_logs "$@" ;;
    run) cmd_run "$@" ;;
    backfill) cmd_backfill "$@" ;;
    status) cmd_status "$@" ;;
    replay) cmd_replay "$@" ;;
    runs) cmd_runs "$@" ;;
    test) cmd_test "$@" ;;
    lint) cmd_lint ;;
    prereqs) cmd_prereqs ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

# Ctrl-C or a kill still runs the EXIT traps (a failed `up` or a `test` stops what it started).
trap 'exit 130' INT
trap 'exit 143' TERM
main "$@"
