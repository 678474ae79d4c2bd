#!/usr/bin/env bash
# Runs every test of calsync on this machine or a fresh one.
#
# It needs PostgreSQL on 127.0.0.1:5432 with trust auth for user `postgres` (every storage test runs
# on SQLite and on PostgreSQL, each in its own database). When none answers, it starts the local
# cluster, or installs Debian's postgresql first. It installs Google's Python API client into a
# virtualenv (the sandbox's conformance tests use its published discovery document), Radicale (a
# CalDAV server for the CalDAV tests), Python's icalendar for the ICS feed's test, and Debian's
# chromium and chromium-driver for the browser tests of the web UI. Then: rustfmt
# check, clippy with -D warnings, and all tests of the workspace (cargo-nextest when installed,
# else cargo test).
set -euo pipefail
cd "$(dirname "$0")/.."

export CALSYNC_TEST_POSTGRES_URL="${CALSYNC_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export SQLX_OFFLINE=true

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

pg_answers() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -h 127.0.0.1 -p 5432 -q
  else
    (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
  fi
}

ensure_postgres() {
  pg_answers && return 0
  local installed_now=0
  if ! ls -d /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "test.sh: PostgreSQL not found; installing Debian's postgresql" >&2
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
    installed_now=1
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if [ "$installed_now" = 1 ]; then
    # A fresh Debian cluster asks loopback TCP clients for a password; tests connect as postgres with trust.
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  echo "test.sh: starting PostgreSQL $version" >&2
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 60); do
    pg_answers && return 0
    sleep 0.5
  done
  echo "test.sh: PostgreSQL did not come up on 127.0.0.1:5432" >&2
  exit 1
}

sweep_test_databases() {
  # Databases left by test runs that were killed before their cleanup ran.
  command -v psql >/dev/null 2>&1 || return 0
  psql "$CALSYNC_TEST_POSTGRES_URL" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'calsync\_t\_%'" 2>/dev/null |
    while read -r db; do
      psql "$CALSYNC_TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
    done
}

ensure_python_tools() {
  # The sandbox's conformance tests check Google responses against the Calendar v3 discovery
  # document that Google's own Python client ships, and drive the sandbox with that client
  # and with Microsoft's Graph SDK (msgraph-sdk).
  local venv="${CALSYNC_TEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/calsync/test-venv}"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import googleapiclient' 2>/dev/null; then
    echo "test.sh: installing google-api-python-client into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "google-api-python-client==2.202.0"
  fi
  if ! "$venv/bin/python" -c 'import msgraph' 2>/dev/null; then
    echo "test.sh: installing msgraph-sdk into $venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check "msgraph-sdk==1.65.0"
  fi
  if ! "$venv/bin/python" -c 'import icalendar, recurring_ical_events' 2>/dev/null; then
    # The ICS feed's test expands the feed with these and compares with calsync's own listing.
    echo "test.sh: installing icalendar and recurring-ical-events into $venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check "icalendar==7.3.2" "recurring-ical-events==3.8.2"
  fi
  if ! "$venv/bin/python" -c 'import radicale' 2>/dev/null; then
    # A real CalDAV server for the CalDAV tests, started by them on a free loopback port.
    echo "test.sh: installing Radicale into $venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check "radicale==3.9.0"
  fi
  export PATH="$venv/bin:$PATH"
  export CALSYNC_PYTHON="$venv/bin/python"
  CALSYNC_GOOGLE_DISCOVERY="$("$venv/bin/python" -c 'import googleapiclient, os; print(os.path.join(os.path.dirname(googleapiclient.__file__), "discovery_cache", "documents", "calendar.v3.json"))')"
  export CALSYNC_GOOGLE_DISCOVERY
}

ensure_browser() {
  # The web UI's tests drive Debian's headless Chromium through chromedriver.
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then return 0; fi
  echo "test.sh: installing Debian's chromium and chromium-driver" >&2
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
}

ensure_postgres
sweep_test_databases
ensure_python_tools
ensure_browser

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
