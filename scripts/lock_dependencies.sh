#!/usr/bin/env bash
# Writes constraints.txt: every pin, direct and transitive, of the project and all its extras,
# resolved by pip-compile (pip-tools) from the direct pins in pyproject.toml. Run it after
# changing a dependency in any pyproject.toml; commit both files together.
#
#   bash scripts/lock_dependencies.sh            # keep existing pins that still fit
#   bash scripts/lock_dependencies.sh --upgrade  # re-resolve everything to the newest allowed
#
# pip-compile keeps a pin already in constraints.txt while it satisfies pyproject.toml, so a
# change to one dependency moves only what it must. scripts/bootstrap.sh installs with
# `-c constraints.txt`; tests/unit/test_dependency_lock.py fails when a direct pin in
# pyproject.toml and the lock disagree.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

[ -x .venv/bin/pip-compile ] || bash scripts/bootstrap.sh
# The client library and the development stack depend only on learner-ledger itself and on
# pins it already holds, so the main pyproject.toml is the one source.
exec .venv/bin/pip-compile --quiet --all-extras --strip-extras \
  --no-emit-index-url --no-emit-find-links --output-file constraints.txt "$@" pyproject.toml
