#!/usr/bin/env bash
# The four functions under the Lambda runtime emulator (cargo lambda watch), against local AWS.
#
#   infra/lambda-local.sh start                     start the emulator with .local/aws.env (+ caller's env)
#   infra/lambda-local.sh stop
#   infra/lambda-local.sh status
#   infra/lambda-local.sh heal                      restart the emulator when it or a function died (exit 0
#                                                   healthy, 10 restarted); scripts/run-local calls it
#   infra/lambda-local.sh invoke FUNCTION EVENT     send one event (events/...json), print the outcome
#   infra/lambda-local.sh smoke                     start, check every case of SMOKE_CASES below, stop
#
# Needs infra/local-aws.sh up first (the env file carries the AWS endpoint, resource names and
# LAMBDA_PORT). PROVIDER_BASE_URL, when exported by the caller, reaches the functions (the env
# file leaves it out). Files: .local/venv-lambda/, lambda.pid, lambda.log.
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VENV="$TTYA_LOCAL/venv-lambda"
PID_FILE="$TTYA_LOCAL/lambda.pid"
LOG_FILE="$TTYA_LOCAL/lambda.log"
STARTED_FILE="$TTYA_LOCAL/lambda.started"
ENV_FILE="$TTYA_LOCAL/aws.env"
READY_TIMEOUT="${LAMBDA_READY_TIMEOUT:-120}"

# What each function really answers today, per sample event. Update a line when a function's
# behaviour changes. Terms (all must hold; see infra/invoke.py): http=N, ok, error,
# json:a.b=V, contains=TEXT (%20 for a space), failures=all|none.
SMOKE_CASES='
oauth-callback/connect-quickbooks.json          http=401 json:error.code=1001
oauth-callback/connect-xero.json                http=401 json:error.code=1001
oauth-callback/connect-zoho.json                http=401 json:error.code=1001
oauth-callback/callback-quickbooks.json         http=400 json:error.code=1004
oauth-callback/disconnect-quickbooks.json       http=401 json:error.code=1001
webhook-receiver/quickbooks.json                http=200
webhook-receiver/quickbooks-cloudevents.json    http=200
webhook-receiver/xero.json                      http=200
webhook-receiver/xero-intent-to-receive.json    http=200
webhook-receiver/zoho.json                      http=401 json:error.code=4001
token-refresher/schedule.json                   ok json:left_for_next_run=0 json:failed=0
token-refresher/force-window.json               ok json:left_for_next_run=0 json:failed=0
sync-worker/batch.json                          ok failures=none
sync-worker/poison.json                         ok failures=none
sync-worker/push.json                           ok failures=none
sync-scheduler/schedule.json                    ok json:failed=0
sync-scheduler/shards.json                      ok json:failed=0
sync-worker/report.json                         ok failures=none
records-api/connections.json                    http=401 json:error.code=1001
records-api/list-invoices.json                  http=401 json:error.code=1001
records-api/unknown-entity.json                 http=400 json:error.code=4000
'

say() { echo "[lambda-local] $*" >&2; }
die() { say "error: $*"; exit 1; }

load_env() {
  [[ -f "$ENV_FILE" ]] || die "$ENV_FILE is missing: run infra/local-aws.sh up first"
  # shellcheck disable=SC1090
  source "$ENV_FILE"
  export PATH="$VENV/bin:$PATH"
}

# A TCP check: any HTTP probe would be routed to a function and logged as an unknown one.
answering() { port_open "$LAMBDA_PORT"; }

start() {
  ensure_venv "$VENV" "$TTYA_ROOT/infra/requirements-lambda.txt"
  load_env
  local pid
  if pid="$(bg_pid "$PID_FILE")" && answering; then
    say "already running (pid $pid, port $LAMBDA_PORT)"
    return 0
  fi
  stop_bg "$PID_FILE" lambda-local
  [[ "$(free_port "$LAMBDA_PORT")" == "$LAMBDA_PORT" ]] || die "port $LAMBDA_PORT is in use (LAMBDA_PORT from $ENV_FILE)"
  # Build first, with the workspace selection every other build uses, so the emulator finds the
  # binaries up to date instead of compiling inside the first invocation (and its timeout).
  say "building the function binaries (the first build in a fresh target dir takes several minutes)"
  (cd "$TTYA_ROOT" && cargo build --workspace --bins)
  # No --timeout: cargo lambda applies it as one tower TimeoutLayer to every route, the runtime API's
  # long poll (GET .../invocation/next) included. An idle function's poll was then answered after
  # that many seconds with a bare 408 carrying no lambda-runtime-aws-request-id header, on which
  # lambda_runtime 1.x panics ("missing lambda-runtime-aws-request-id header"); watchexec keeps the
  # dead instance registered, so every later invocation of that function hung. (With --timeout 600
  # every function died ten minutes into an idle run-local.) Callers bound their own waits instead
  # (infra/invoke.py's INVOKE_TIMEOUT_SECONDS).
  (cd "$TTYA_ROOT" && start_bg "$PID_FILE" "$LOG_FILE" cargo lambda watch -A 127.0.0.1 -P "$LAMBDA_PORT" --ignore-changes ${LAMBDA_WATCH_EXTRA_ARGS:-})
  date +%s >"$STARTED_FILE"
  pid="$(cat "$PID_FILE")"
  if ! wait_until "$READY_TIMEOUT" "$pid" "cargo lambda watch" answering; then
    say "last lines of $LOG_FILE:"
    tail -n 30 "$LOG_FILE" >&2 || true
    stop_bg "$PID_FILE" lambda-local
    exit 1
  fi
  say "running (pid $pid) at http://127.0.0.1:$LAMBDA_PORT/lambda-url/<function>/..., log ${LOG_FILE#"$TTYA_ROOT"/}"
  if [[ -n "${PROVIDER_BASE_URL:-}" ]]; then
    say "functions reach the providers at $PROVIDER_BASE_URL"
  fi
}

# Why the emulator needs a restart, or nothing when it is healthy. A function that panicked (or was
# killed) stays registered with cargo lambda watch and is never started again, so the log's panics
# and the functions' processes are checked, not only the emulator's own pid.
unhealthy_reason() {
  local pid name
  if ! pid="$(bg_pid "$PID_FILE")"; then
    echo "the emulator is not running"
    return
  fi
  if grep -q "panicked at" "$LOG_FILE" 2>/dev/null; then
    echo "a function panicked: $(grep -m1 -A1 "panicked at" "$LOG_FILE" | tr '\n' ' ' | cut -c1-200)"
    return
  fi
  # Every function the emulator started ("starting lambda function instance") must still have its
  # process (cargo run execs target/<profile>/<name>) as a child of the emulator (watchexec starts
  # each function in a session of its own, so the emulator's session or group does not hold it).
  while IFS= read -r name; do
    [[ -z "$name" ]] && continue
    if ! pgrep -P "$pid" -f "(^|/)$name( |\$)" >/dev/null 2>&1; then
      echo "function $name exited"
      return
    fi
  done < <(sed 's/\x1b\[[0-9;]*m//g' "$LOG_FILE" 2>/dev/null | sed -n 's/.*starting lambda function instance.*function="\{0,1\}\([A-Za-z0-9_-]*\).*/\1/p' | sort -u)
}

heal() {
  load_env
  local reason
  reason="$(unhealthy_reason)"
  [[ -z "$reason" ]] && return 0
  say "restarting: $reason"
  [[ -f "$LOG_FILE" ]] && cp "$LOG_FILE" "$LOG_FILE.before-restart"
  stop_bg "$PID_FILE" lambda-local
  start
  return 10
}

invoke() {
  local function="$1" event="$2"
  [[ -f "$event" ]] || event="$TTYA_ROOT/events/$event"
  [[ -f "$event" ]] || die "no event file $2"
  load_env
  python3 "$TTYA_ROOT/infra/invoke.py" run --port "$LAMBDA_PORT" "$function" "$event"
}

smoke() {
  local started_here=0
  if ! bg_pid "$PID_FILE" >/dev/null; then
    start
    started_here=1
  else
    load_env
  fi
  # shellcheck disable=SC2064
  [[ $started_here == 1 ]] && trap "stop_bg '$PID_FILE' lambda-local" EXIT
  local passed=0 failed=0 line event expect function
  while IFS= read -r line; do
    [[ -z "${line// /}" || "$line" == \#* ]] && continue
    event="${line%% *}"
    expect="${line#* }"
    expect="${expect#"${expect%%[! ]*}"}"
    function="${event%%/*}"
    echo "smoke: $event -> $expect"
    if python3 "$TTYA_ROOT/infra/invoke.py" check --port "$LAMBDA_PORT" "$function" "$TTYA_ROOT/events/$event" "$expect"; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
      echo "  FAILED (function log: ${LOG_FILE#"$TTYA_ROOT"/})"
    fi
  done <<<"$SMOKE_CASES"
  # Every event file must be covered, so a new event cannot be forgotten here.
  local f rel
  while IFS= read -r f; do
    rel="${f#"$TTYA_ROOT/events/"}"
    if ! grep -q "^$rel " <<<"$SMOKE_CASES"; then
      echo "smoke: events/$rel has no line in SMOKE_CASES (infra/lambda-local.sh)"
      failed=$((failed + 1))
    fi
  done < <(find "$TTYA_ROOT/events" -name '*.json' | sort)
  echo "lambda smoke: $passed passed, $failed failed"
  ((failed == 0))
}

case "${1:-}" in
  start) start ;;
  stop)
    if bg_pid "$PID_FILE" >/dev/null; then stop_bg "$PID_FILE" lambda-local; else say "not running"; fi
    ;;
  status)
    if pid="$(bg_pid "$PID_FILE")"; then
      load_env
      echo "running pid=$pid port=$LAMBDA_PORT"
    else
      echo "stopped"
      exit 3
    fi
    ;;
  invoke)
    [[ $# == 3 ]] || die "usage: $0 invoke FUNCTION EVENT_FILE"
    invoke "$2" "$3"
    ;;
  smoke) smoke ;;
  heal) heal ;;
  *)
    echo "usage: $0 start|stop|status|heal|invoke FUNCTION EVENT_FILE|smoke" >&2
    exit 2
    ;;
esac
