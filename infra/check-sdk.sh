#!/usr/bin/env bash
# The providers' official SDKs read the sandbox (issues 22 and 24): Xero's Python SDK (xero-python,
# pinned in infra/requirements-sdk.txt, venv .local/venv-sdk) reads every Xero entity the sandbox
# serves and reads back what it wrote there (infra/sdk_check.py), and the check's own tests prove it
# can fail (infra/test_sdk_check.py). Needs target/debug/sandbox (`cargo build -p sandbox`;
# scripts/test-all's build step makes it). QuickBooks and Zoho have no official SDK this machine can
# install: docs/testing.md ("The providers' official SDKs read it").
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VENV="$TTYA_LOCAL/venv-sdk"
ensure_venv "$VENV" "$TTYA_ROOT/infra/requirements-sdk.txt"
SANDBOX_BIN="${SANDBOX_BIN:-$TTYA_ROOT/target/debug/sandbox}"
if [[ ! -x "$SANDBOX_BIN" ]]; then
  echo "no sandbox binary at $SANDBOX_BIN: cargo build -p sandbox" >&2
  exit 2
fi
export SANDBOX_BIN
cd "$TTYA_ROOT/infra"
echo "--- xero-python reads the sandbox (infra/sdk_check.py)"
"$VENV/bin/python" sdk_check.py
echo "--- the check can fail (infra/test_sdk_check.py)"
"$VENV/bin/python" -m unittest test_sdk_check
