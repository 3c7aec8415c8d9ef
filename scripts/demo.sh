#!/usr/bin/env bash
# The main job (README "Quick start"): the whole pipeline locally, on real Kafka and PostgreSQL.
#
#   bash scripts/demo.sh [--completions N]
#
# Installs what is missing (scripts/bootstrap.sh), starts the local stack and the four services,
# streams demo completions through the gateway and prints a transcript fetched over gRPC.
# The services keep running; `.venv/bin/ledgerctl stack down` stops everything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/bootstrap.sh
exec .venv/bin/ledgerctl demo "$@"
