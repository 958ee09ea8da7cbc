#!/usr/bin/env bash
# The functions under the Lambda emulator keep answering however long they idle, and one that dies
# is brought back by infra/lambda-local.sh heal (what scripts/run-local runs every few seconds).
#
#   infra/local-aws.sh up && bash infra/test-lambda-idle.sh
#
# 1. The cause, reproduced fast: `cargo lambda watch --timeout 3` answers a function's idle long
#    poll after 3 s with a bare 408 and the function panics ("missing lambda-runtime-aws-request-id
#    header"), exactly what --timeout 600 did after ten minutes. The next request fails; heal
#    notices and restarts; a request then answers.
# 2. Our configuration (no --timeout): a function idles IDLE_SECONDS (default 20, well past the 3 s
#    that killed it in 1), nothing panics, heal finds it healthy, and a request answers.
# 3. A function killed outright (no panic in the log): heal restarts it and a request answers.
# Exit 0 only when every step held. Uses LAMBDA_PORT from .local/aws.env; stops what it started.
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$TTYA_ROOT"
[[ -f .local/aws.env ]] || { echo "run infra/local-aws.sh up first" >&2; exit 2; }
# shellcheck disable=SC1091
source .local/aws.env

IDLE_SECONDS="${IDLE_SECONDS:-20}"
FN=webhook-receiver
EVENT=events/webhook-receiver/xero-intent-to-receive.json
export INVOKE_TIMEOUT_SECONDS=60
failed=0

step() { echo; echo "== $*"; }
ok() { echo "   ok: $*"; }
bad() { echo "   FAILED: $*"; failed=$((failed + 1)); }
answers() { python3 infra/invoke.py check --port "$LAMBDA_PORT" "$FN" "$EVENT" "http=200" >/dev/null 2>&1; }
heal() {
  local rc=0
  bash infra/lambda-local.sh heal >/dev/null 2>&1 || rc=$?
  echo "$rc"
}
cleanup() { bash infra/lambda-local.sh stop >/dev/null 2>&1 || true; }
trap cleanup EXIT

bash infra/lambda-local.sh stop >/dev/null 2>&1 || true

step "1. cargo lambda watch --timeout 3 (the old setting, shortened): the idle function dies"
LAMBDA_WATCH_EXTRA_ARGS="--timeout 3" bash infra/lambda-local.sh start
if answers; then ok "first request answered"; else bad "first request did not answer"; fi
sleep 8
if grep -q "missing lambda-runtime-aws-request-id header" .local/lambda.log; then
  ok "the function panicked on the emulator's idle 408"
else
  bad "no panic after idling past --timeout: the cause is not what this test assumes"
fi
if answers; then bad "a request answered although the function died"; else ok "the next request fails (nothing restarts the function)"; fi
# heal restarts with the caller's environment: without the extra args, i.e. the fixed configuration.
rc="$(heal)"
if [[ "$rc" == 10 ]]; then ok "heal restarted the emulator"; else bad "heal returned $rc, expected 10 (restarted)"; fi
if answers; then ok "a request after the restart answers"; else bad "no answer after the restart"; fi

step "2. our configuration: idle ${IDLE_SECONDS}s, still answering"
bash infra/lambda-local.sh stop >/dev/null 2>&1 || true
bash infra/lambda-local.sh start
if answers; then ok "first request answered"; else bad "first request did not answer"; fi
sleep "$IDLE_SECONDS"
if grep -q "panicked at" .local/lambda.log; then bad "a function panicked while idle"; else ok "no panic while idle"; fi
rc="$(heal)"
if [[ "$rc" == 0 ]]; then ok "heal finds the emulator healthy"; else bad "heal returned $rc, expected 0 (healthy)"; fi
if answers; then ok "a request after ${IDLE_SECONDS}s idle answers"; else bad "no answer after idling"; fi

step "3. a function killed outright is restarted by heal"
pid="$(cat .local/lambda.pid)"
fpid="$(pgrep -P "$pid" -f "(^|/)$FN( |\$)" | head -n1 || true)"
if [[ -n "$fpid" ]]; then
  kill -KILL "$fpid"
  sleep 1
  rc="$(heal)"
  if [[ "$rc" == 10 ]]; then ok "heal noticed the dead function and restarted"; else bad "heal returned $rc, expected 10"; fi
  if answers; then ok "a request after the restart answers"; else bad "no answer after the restart"; fi
else
  bad "no $FN process found among the emulator's children"
fi

echo
if ((failed == 0)); then echo "lambda idle test: passed"; else echo "lambda idle test: $failed failed"; fi
((failed == 0))
