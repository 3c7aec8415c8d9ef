#!/usr/bin/env bash
# The test command (README "Quick start"; .ci/run runs exactly this).
#
#   bash scripts/test.sh [pytest args]
#
# On a fresh Debian machine it installs what it needs (apt: PostgreSQL, Java, Maven; Maven
# Central: the Kafka jars; PyPI: the .venv), then runs the checks and the whole test suite.
# The tests start their own Kafka and PostgreSQL on free ports and stop them at the end;
# with KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL set they use those servers instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec </dev/null

bash scripts/bootstrap.sh
if [ -f scripts/k8s_tools.sh ]; then
  bash scripts/k8s_tools.sh
fi
export PATH="$PWD/.venv/bin:$PWD/.state/bin:$PATH"

step() { printf '\n== %s\n' "$*"; }

step "lint and format (ruff)"
ruff check .
ruff format --check .

step "types (mypy; the domain core is strict)"
mypy common services tools clients/python/learnerledger_client

step "import contracts (import-linter: layers, independent services, pure domain)"
python scripts/lint_imports.py

step "protobuf contract: buf lint, generated code is current"
python scripts/gen_proto.py --check --lint

step "tests (pytest: unit, integration on real Kafka + PostgreSQL, deploy)"
python -m pytest "$@"
