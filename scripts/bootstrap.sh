#!/usr/bin/env bash
# Prepare this machine to develop and test Learner Ledger (Debian/Ubuntu).
#
#   bash scripts/bootstrap.sh
#
# Idempotent and quick when everything is present; non-interactive (fine with CI=true and no
# stdin). It installs, only when missing:
#   - PostgreSQL server binaries (apt `postgresql`; the Debian default cluster is NOT created:
#     the stack runs its own cluster under .state/postgres, see learnerledger_devstack.postgres_server)
#   - Java 17+ and Maven (apt `openjdk-17-jre-headless`, `maven`)
#   - a headless browser for the web pages' tests (apt `chromium`, `chromium-driver`)
#   - .venv (Python 3.11+) with the project, the client library (clients/python) and the
#     development stack (tools/devstack: `ledgerctl stack`, `demo`) installed editable,
#     re-installed when a pyproject.toml or constraints.txt change
#   - the Kafka jars (Maven Central, cached in .state/kafka-libs)
# Root is needed only for apt; as a normal user it uses `sudo -n` when available.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT="$(pwd)"
export DEBIAN_FRONTEND=noninteractive
exec </dev/null

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# apt helpers

APT_UPDATED=0

# Run a command as root: directly, or through `sudo -n` (never prompts).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@" || die "'sudo -n $*' failed; run it yourself (needs root) and re-run bootstrap"
  else
    die "needs root: $*  (run it as root, then re-run bootstrap)"
  fi
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 \
    || die "apt-get not found; install these yourself: $*"
  if [ "$APT_UPDATED" -eq 0 ]; then
    say "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    APT_UPDATED=1
  fi
  say "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" >/dev/null
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL server binaries

find_initdb() {
  if [ -n "${LOCAL_POSTGRES_BIN_DIR:-}" ] && [ -x "${LOCAL_POSTGRES_BIN_DIR}/initdb" ]; then
    echo "${LOCAL_POSTGRES_BIN_DIR}/initdb"; return 0
  fi
  if command -v initdb >/dev/null 2>&1; then command -v initdb; return 0; fi
  local found
  found="$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$found" ]; then echo "$found"; return 0; fi
  return 1
}

if initdb_path="$(find_initdb)"; then
  say "postgresql: ok ($initdb_path)"
else
  # Do not let the package create and start the default cluster on port 5432: the stack runs
  # its own cluster, and a system one would occupy LOCAL_POSTGRES_PORT.
  cc_conf=/etc/postgresql-common/createcluster.conf
  if ! grep -Eqs '^[[:space:]]*create_main_cluster[[:space:]]*=[[:space:]]*false' "$cc_conf"; then
    say "postgresql: no Debian default cluster (create_main_cluster = false in $cc_conf)"
    as_root mkdir -p /etc/postgresql-common
    printf 'create_main_cluster = false\n' | as_root tee -a "$cc_conf" >/dev/null
  fi
  apt_install postgresql
  initdb_path="$(find_initdb)" || die "postgresql installed but initdb not found"
  say "postgresql: installed ($initdb_path)"
fi

# ---------------------------------------------------------------------------------------------
# Java 17+ and Maven

java_major() {
  local java="$1" line
  line="$("$java" -version 2>&1 | head -n 1 || true)"
  line="${line#*version \"}"
  line="${line%%\"*}"
  case "$line" in
    1.*) line="${line#1.}" ;;
  esac
  echo "${line%%[.+-]*}"
}

JAVA_BIN=""
if [ -n "${JAVA_HOME:-}" ] && [ -x "${JAVA_HOME}/bin/java" ]; then
  JAVA_BIN="${JAVA_HOME}/bin/java"
elif command -v java >/dev/null 2>&1; then
  JAVA_BIN="$(command -v java)"
fi
if [ -z "$JAVA_BIN" ] || ! [ "$(java_major "$JAVA_BIN")" -ge 17 ] 2>/dev/null; then
  apt_install openjdk-17-jre-headless
  JAVA_BIN="$(command -v java)"
fi
major="$(java_major "$JAVA_BIN")"
[ "${major:-0}" -ge 17 ] 2>/dev/null || die "Java 17+ needed, $JAVA_BIN is '$major' (set JAVA_HOME)"
say "java: ok (Java $major, $JAVA_BIN)"

if ! command -v mvn >/dev/null 2>&1; then
  apt_install maven
fi
say "maven: ok ($(command -v mvn))"

# ---------------------------------------------------------------------------------------------
# Chromium and its WebDriver (tests/web drive the web pages with selenium, headless)

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  apt_install chromium chromium-driver
fi
say "chromium: ok ($(command -v chromium), $(command -v chromedriver))"

# ---------------------------------------------------------------------------------------------
# Python virtualenv

find_python() {
  local candidate
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
      && "$candidate" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 14) else 1)'; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

if [ ! -x .venv/bin/python ]; then
  PYTHON="$(find_python)" || die "Python 3.11-3.13 not found (Debian 12: apt-get install -y python3 python3-venv)"
  say "venv: creating .venv with $PYTHON"
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    apt_install python3-venv
    "$PYTHON" -m venv .venv
  fi
fi

stamp_file=.venv/.bootstrap-stamp
want_stamp="$(cat pyproject.toml clients/python/pyproject.toml tools/devstack/pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
have_stamp="$(cat "$stamp_file" 2>/dev/null || true)"
if [ "$want_stamp" != "$have_stamp" ]; then
  say "venv: installing the project, the client library and the development stack (pip install -e '.[dev,bench,cli]' -e clients/python -e tools/devstack)"
  pip_log=.venv/bootstrap-pip.log
  if ! { .venv/bin/pip install -q --disable-pip-version-check --upgrade pip \
         && .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev,bench,cli]' -e ./clients/python -e ./tools/devstack; } \
       >"$pip_log" 2>&1; then
    tail -n 40 "$pip_log" >&2
    die "pip install failed (full output: $pip_log)"
  fi
  echo "$want_stamp" > "$stamp_file"
else
  say "venv: ok (dependencies unchanged)"
fi

# ---------------------------------------------------------------------------------------------
# Kafka jars (Maven Central -> .state/kafka-libs, or LOCAL_KAFKA_LIBS_DIR)

libs_dir="$(.venv/bin/python -c '
from learnerledger_devstack.stack import StackConfig, resolve_kafka_jars
print(resolve_kafka_jars(StackConfig.from_env()))
')" || die "resolving the Kafka jars failed (see above)"
say "kafka: ok (jars in $libs_dir)"

say "done. Start the stack with: .venv/bin/ledgerctl stack up   (repo: $REPO_ROOT)"
