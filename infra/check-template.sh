#!/usr/bin/env bash
# Offline checks of template.yaml and the files derived from it:
#   cfn-lint, `sam validate --lint`, the project's own rules (infra/template_checks.py), the unit
#   tests of the template tooling, that events/ matches infra/make-events.py, and that every relative
#   link in README.md and docs/ resolves.
# Venv: .local/venv-cfn (pins in infra/requirements-cfn.txt; they conflict with moto's, hence apart).
set -euo pipefail
# shellcheck source=infra/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VENV="$TTYA_LOCAL/venv-cfn"
ensure_venv "$VENV" "$TTYA_ROOT/infra/requirements-cfn.txt"
cd "$TTYA_ROOT"

echo "--- cfn-lint template.yaml"
"$VENV/bin/cfn-lint" template.yaml
echo "--- sam validate --lint"
SAM_CLI_TELEMETRY=0 "$VENV/bin/sam" validate --lint -t template.yaml
echo "--- project rules"
"$VENV/bin/python" infra/template_checks.py
echo "--- shared's layers: no new back-edge (infra/check_layers.py, baseline infra/layers-baseline.txt)"
"$VENV/bin/python" infra/check_layers.py | tail -n 5
test "${PIPESTATUS[0]}" -eq 0
echo "--- README and docs/: every relative link resolves (infra/check_doc_links.py)"
"$VENV/bin/python" infra/check_doc_links.py
echo "--- template tooling unit tests"
"$VENV/bin/python" -m unittest discover -s infra -p 'test_*.py'
echo "--- events/ up to date"
"$VENV/bin/python" infra/make-events.py --check
