#!/usr/bin/env bash
# A Python venv for the parity test, the pandas benchmark, the SQL tests (DuckDB's Python client
# and its CLI from PyPI read the published copy; psycopg talks to the Postgres-wire endpoint) and
# the container test (pyyaml checks the compose file), kept in the cache outside the clone.
# usage: scripts/python-venv.sh VENV_DIR     (re-run is a no-op once the packages import)
set -euo pipefail
VENV=$1
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import duckdb, pandas, numpy, pytz, pyarrow, yaml, psycopg' 2>/dev/null \
  && [ -x "$VENV/bin/duckdb" ]; then
  exit 0
fi
python3 -m venv "$VENV"
# duckdb 1.5.x: the same engine as the binary, so the file is read by the version that wrote it.
"$VENV/bin/pip" install -q --disable-pip-version-check 'duckdb==1.5.*' 'duckdb-cli==1.5.*' 'pandas>=2.2' numpy pytz pyarrow pyyaml 'psycopg[binary]'
