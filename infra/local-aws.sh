#!/usr/bin/env bash
# Local AWS for development and tests: an emulator provisioned from template.yaml by provision.py.
#
#   infra/local-aws.sh up       install (first time), start (or reuse), provision, write .local/aws.env
#   infra/local-aws.sh down     stop the server
#   infra/local-aws.sh status   is it running, which engine, on which port (exit 3 when stopped)
#   infra/local-aws.sh env      print the path of the env file (to source)
#   infra/local-aws.sh reset    wipe every resource and item (the engine's reset), provision again
#
# LOCAL_AWS_ENGINE picks the emulator: `ministack` (the default: 4-600x faster on the tables the
# tests fill, and it pages a GSI as AWS does) or `moto` (the one that enforces SQS's 12 h-from-first-
# receipt visibility limit; the test harness enforces it for MiniStack). A running server keeps its
# engine until `down`. Measured in ../shared/local-aws.md and docs/testing.md.
#
# Files (under .local/, gitignored): venv-moto/ or venv-ministack/, <engine>.pid, <engine>.port,
# <engine>.log, local-aws.engine (the engine up), aws.env.
# MOTO_PORT / MINISTACK_PORT / LAMBDA_PORT in the environment pick the ports; otherwise free ones are
# chosen (LAMBDA_PORT prefers 9000). See infra/README.md.
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ENGINE_FILE="$TTYA_LOCAL/local-aws.engine"
# The engine already up wins over the environment, so `down`/`status`/`reset` reach it.
if [[ -f "$ENGINE_FILE" ]]; then
  ENGINE="$(cat "$ENGINE_FILE")"
else
  ENGINE="${LOCAL_AWS_ENGINE:-ministack}"
fi
case "$ENGINE" in
  moto | ministack) ;;
  *) echo "[local-aws] error: LOCAL_AWS_ENGINE=$ENGINE (moto or ministack)" >&2; exit 2 ;;
esac
VENV="$TTYA_LOCAL/venv-$ENGINE"
PID_FILE="$TTYA_LOCAL/$ENGINE.pid"
PORT_FILE="$TTYA_LOCAL/$ENGINE.port"
LOG_FILE="$TTYA_LOCAL/$ENGINE.log"
ENV_FILE="$TTYA_LOCAL/aws.env"
READY_TIMEOUT="${MOTO_READY_TIMEOUT:-30}"

say() { echo "[local-aws] $*" >&2; }
die() { say "error: $*"; exit 1; }

current_port() { [[ -f "$PORT_FILE" ]] && cat "$PORT_FILE"; }

answering() {
  local port
  port="$(current_port)" || return 1
  if [[ "$ENGINE" == ministack ]]; then
    ministack_answers "$port"
  else
    http_answers "http://127.0.0.1:$port/moto-api/"
  fi
}

start() {
  mkdir -p "$TTYA_LOCAL"
  local pid port
  if pid="$(bg_pid "$PID_FILE")"; then
    if answering; then
      say "$ENGINE already running (pid $pid, port $(current_port))"
      return 0
    fi
    say "$ENGINE (pid $pid) is not answering; restarting it"
    stop_bg "$PID_FILE" local-aws
  fi
  local want="${MOTO_PORT:-}"
  [[ "$ENGINE" == ministack ]] && want="${MINISTACK_PORT:-}"
  port="$(free_port "$want")"
  if [[ -n "$want" && "$port" != "$want" ]]; then
    die "port $want is in use"
  fi
  echo "$port" >"$PORT_FILE"
  echo "$ENGINE" >"$ENGINE_FILE"
  if [[ "$ENGINE" == ministack ]]; then
    # Lambda and the scheduler are not run by it here: the tests play the event source mappings
    # themselves (tests/support/queues.rs), and no function is deployed into it by provision.py.
    if ! start_ministack "$VENV" "$port" "$PID_FILE" "$LOG_FILE"; then
      rm -f "$PORT_FILE" "$ENGINE_FILE"
      exit 1
    fi
    say "ministack running (pid $(cat "$PID_FILE"), port $port, log ${LOG_FILE#"$TTYA_ROOT"/})"
    return 0
  fi
  # infra/moto_server.py is moto_server with DynamoDB requests serialised, so conditional writes are
  # atomic per item as in DynamoDB (moto's threaded server alone lets two racing writers both win).
  start_bg "$PID_FILE" "$LOG_FILE" "$VENV/bin/python" "$TTYA_ROOT/infra/moto_server.py" -H 127.0.0.1 -p "$port"
  pid="$(cat "$PID_FILE")"
  if ! wait_until "$READY_TIMEOUT" "$pid" "moto_server on port $port" answering; then
    say "last lines of $LOG_FILE:"
    tail -n 30 "$LOG_FILE" >&2 || true
    stop_bg "$PID_FILE" local-aws
    rm -f "$PORT_FILE" "$ENGINE_FILE"
    exit 1
  fi
  say "moto running (pid $pid, port $port, log ${LOG_FILE#"$TTYA_ROOT"/})"
}

provision() {
  local lambda_port
  # The Lambda emulator's port is part of PUBLIC_BASE_URL (OAuth redirect URIs), so it is chosen
  # here, once, and infra/lambda-local.sh reads it back from the env file.
  lambda_port="$(free_port "${LAMBDA_PORT:-9000}")"
  "$VENV/bin/python" "$TTYA_ROOT/infra/provision.py" --endpoint "http://127.0.0.1:$(current_port)" \
    --out "$ENV_FILE" --lambda-port "$lambda_port"
}

case "${1:-}" in
  up)
    ensure_venv "$VENV" "$TTYA_ROOT/infra/requirements-$ENGINE.txt"
    start
    provision
    say "environment: source ${ENV_FILE#"$TTYA_ROOT"/}"
    ;;
  down)
    if bg_pid "$PID_FILE" >/dev/null; then
      stop_bg "$PID_FILE" local-aws
    else
      say "$ENGINE not running"
      rm -f "$PID_FILE"
    fi
    rm -f "$PORT_FILE" "$ENGINE_FILE"
    ;;
  status)
    if pid="$(bg_pid "$PID_FILE")"; then
      if answering; then
        echo "running engine=$ENGINE pid=$pid port=$(current_port) env=$ENV_FILE"
      else
        echo "not answering pid=$pid (see $LOG_FILE)"
        exit 1
      fi
    else
      echo "stopped"
      exit 3
    fi
    ;;
  env)
    [[ -f "$ENV_FILE" ]] || die "$ENV_FILE does not exist: run infra/local-aws.sh up"
    echo "$ENV_FILE"
    ;;
  reset)
    answering || die "$ENGINE is not running: run infra/local-aws.sh up"
    if [[ "$ENGINE" == ministack ]]; then
      ministack_reset "$(current_port)"
    else
      python3 -c "import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], method='POST'), timeout=180)" \
        "http://127.0.0.1:$(current_port)/moto-api/reset"
    fi
    say "$ENGINE reset; provisioning again"
    provision
    ;;
  *)
    echo "usage: $0 up|down|status|env|reset" >&2
    exit 2
    ;;
esac
