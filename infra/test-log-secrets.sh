#!/usr/bin/env bash
# Runs the whole local flow (scripts/run-local --once: the template deployed into MiniStack, three
# providers connected, initial sync, signed webhooks, scheduled pulls and refreshes) and greps
# everything it logged (the functions' CloudWatch logs, MiniStack's log, the walk-through and ops CLI
# output) for every secret and token the run handled. The sandbox's own log is the provider's side
# and is not checked.
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$TTYA_ROOT"

python3 infra/check-log-secrets.py --self-test
mkdir -p "$TTYA_LOCAL"
rm -f "$TTYA_LOCAL/handled-secrets.json"
out="$TTYA_LOCAL/run-local-once.log"
# The refresher every minute (a template parameter, not a second stack): the walk-through waits
# for its first scheduled run, which would otherwise be five minutes away.
if ! REFRESH_SCHEDULE="rate(1 minute)" scripts/run-local --once >"$out" 2>&1; then
  echo "test-log-secrets: scripts/run-local --once failed; its last lines:"
  tail -n 40 "$out" | sed 's/^/    /'
  exit 1
fi
grep '^\[demo\]' "$out" | sed 's/^/    /' || true
logs=("$out" "$TTYA_LOCAL/functions.log" "$TTYA_LOCAL/stack-ministack.log")
python3 infra/check-log-secrets.py "$TTYA_LOCAL/handled-secrets.json" "${logs[@]}"
