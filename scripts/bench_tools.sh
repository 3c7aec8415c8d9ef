#!/usr/bin/env bash
# Tools the benchmarks use when present (by hand; CI's smoke runs do without them):
#   ghz, a gRPC load generator written in Go, from the Go module proxy, into .state/bin.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
GHZ_VERSION=v0.120.0
mkdir -p .state/bin
if [ -x .state/bin/ghz ]; then
  echo "bench_tools: ghz: ok (.state/bin/ghz)"
else
  command -v go >/dev/null 2>&1 || { echo "bench_tools: needs Go (apt install golang)" >&2; exit 1; }
  echo "bench_tools: ghz: installing $GHZ_VERSION with go install (about a minute)"
  GOBIN="$PWD/.state/bin" go install "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION"
fi
