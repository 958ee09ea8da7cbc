# shellcheck shell=bash
# Helpers shared by the infra/ and scripts/ shell scripts. Source it; it defines functions only.

# The repository root, whichever script sourced this file.
TTYA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# TTYA_LOCAL set by the caller picks another state directory (scripts/test-all runs a second local
# AWS for the tests in .local/tests).
export TTYA_LOCAL="${TTYA_LOCAL:-$TTYA_ROOT/.local}"

# ensure_venv DIR REQUIREMENTS: a venv at DIR with exactly REQUIREMENTS installed. The venv keeps a
# copy of the file it was built from, so changing a pin rebuilds it and an unchanged one costs nothing.
ensure_venv() {
  local dir="$1" reqs="$2"
  if [[ -x "$dir/bin/python" ]] && cmp -s "$reqs" "$dir/.requirements"; then
    return 0
  fi
  echo "[venv] installing $(grep -v '^#' "$reqs" | xargs) into ${dir#"$TTYA_ROOT"/} (first run only: a minute or more)" >&2
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  # The machine's own pip (22.3 or later: --python) installs into a venv made without a pip of its
  # own, and byte-code is compiled when a module is first imported, not for every installed file:
  # scripts/test-all installs the venvs beside its build, and the venv's own pip cost about 4
  # CPU-seconds a venv and compiling cfn-lint's venv whole about 12 (docs/measurements.md).
  if python3 -m venv --without-pip "$dir" && python3 -m pip --python "$dir/bin/python" --version >/dev/null 2>&1; then
    python3 -m pip --python "$dir/bin/python" install --quiet --no-compile --disable-pip-version-check -r "$reqs"
  else
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --no-compile --disable-pip-version-check -r "$reqs"
  fi
  cp "$reqs" "$dir/.requirements"
}

# http_answers URL [any]: true when URL answers 2xx, or any HTTP status at all with "any".
http_answers() {
  python3 - "$1" "${2:-2xx}" <<'PY'
import sys, urllib.request, urllib.error
url, mode = sys.argv[1], sys.argv[2]
try:
    urllib.request.urlopen(url, timeout=2)
except urllib.error.HTTPError:
    sys.exit(0 if mode == "any" else 1)
except Exception:
    sys.exit(1)
PY
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()' "$1" 2>/dev/null
}

# free_port [PREFERRED]: PREFERRED when it is free, else any free port.
free_port() {
  python3 - "${1:-}" <<'PY'
import socket, sys
def bind(p):
    s = socket.socket()
    # As servers do: connections of a stopped server in TIME_WAIT do not make the port busy.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", p))
        return s.getsockname()[1]
    except OSError:
        return None
    finally:
        s.close()
preferred = int(sys.argv[1]) if sys.argv[1] else 0
print((preferred and bind(preferred)) or bind(0))
PY
}

# start_bg PID_FILE LOG_FILE CMD...: start CMD in its own session (so Ctrl-C in a foreground script
# does not hit it, and stop_bg can end it with everything it spawned as one process group).
start_bg() {
  local pid_file="$1" log_file="$2"
  shift 2
  setsid "$@" >"$log_file" 2>&1 </dev/null &
  echo $! >"$pid_file"
}

# bg_pid PID_FILE: the pid when that process is alive.
bg_pid() {
  [[ -f "$1" ]] || return 1
  local pid
  pid="$(cat "$1")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# stop_bg PID_FILE NAME: TERM the process group started by start_bg, KILL it after 5 s.
stop_bg() {
  local pid_file="$1" name="$2" pid
  if pid="$(bg_pid "$pid_file")"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "[$name] stopped (pid $pid)" >&2
  fi
  rm -f "$pid_file"
}

# wait_until SECONDS PID DESCRIPTION CMD...: poll CMD every 0.2 s; fail when PID dies or time is up.
wait_until() {
  local seconds="$1" pid="$2" what="$3"
  shift 3
  local tries=$((seconds * 5))
  until "$@"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "error: $what exited before it was ready" >&2
      return 1
    fi
    tries=$((tries - 1))
    if ((tries <= 0)); then
      echo "error: $what not ready after ${seconds}s" >&2
      return 1
    fi
    sleep 0.2
  done
}

# start_ministack VENV PORT PID_FILE LOG_FILE [ENV=VALUE...]: MiniStack on 127.0.0.1:PORT, in the
# account the template's ARNs and the tests expect, started in the background; waits until its
# health endpoint answers (fails with the log's tail when it does not).
MINISTACK_ACCOUNT_ID="${MINISTACK_ACCOUNT_ID:-123456789012}"
start_ministack() {
  local venv="$1" port="$2" pid_file="$3" log_file="$4"
  shift 4
  start_bg "$pid_file" "$log_file" env GATEWAY_PORT="$port" BIND_HOST=127.0.0.1 \
    MINISTACK_ACCOUNT_ID="$MINISTACK_ACCOUNT_ID" MINISTACK_REGION=us-east-1 LOG_LEVEL="${MINISTACK_LOG_LEVEL:-WARNING}" \
    "$@" "$venv/bin/python" -m ministack
  local pid
  pid="$(cat "$pid_file")"
  if ! wait_until "${MINISTACK_READY_TIMEOUT:-30}" "$pid" "ministack on port $port" ministack_answers "$port"; then
    tail -n 30 "$log_file" >&2 || true
    stop_bg "$pid_file" ministack
    return 1
  fi
}

# ministack_answers PORT: MiniStack's health endpoint answers on PORT.
ministack_answers() { http_answers "http://127.0.0.1:$1/_ministack/health"; }

# ministack_reset PORT: every resource and item gone (its POST /_ministack/reset).
ministack_reset() {
  python3 -c "import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], method='POST'), timeout=180)" \
    "http://127.0.0.1:$1/_ministack/reset"
}
