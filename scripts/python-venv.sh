#!/usr/bin/env bash
# A Python venv for the parity test, the pandas benchmark, the SQL tests (DuckDB's Python client
# and its CLI from PyPI read the published copy; psycopg talks to the Postgres-wire endpoint) and
# the container test (pyyaml checks the compose file), kept in the cache outside the clone.
# usage: scripts/python-venv.sh VENV_DIR     (re-run is a no-op once the packages import)
set -euo pipefail
VENV=$1
# DuckDB 1.5.5: the same engine as the binary, so files are read by the version that wrote them,
# and the only one the lake's extension builds load into. A venv with another version (a machine
# that ran an older release) is rebuilt.
DUCKDB=1.5.5
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import duckdb, pandas, numpy, pytz, pyarrow, yaml, psycopg' 2>/dev/null \
  && [ "$("$VENV/bin/python" -c 'import duckdb; print(duckdb.__version__)')" = "$DUCKDB" ] \
  && [ -x "$VENV/bin/duckdb" ] && "$VENV/bin/duckdb" --version | grep -q "v$DUCKDB"; then
  exit 0
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "duckdb==$DUCKDB" "duckdb-cli==$DUCKDB" 'pandas>=2.2' numpy pytz pyarrow pyyaml 'psycopg[binary]'
