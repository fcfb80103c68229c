#!/usr/bin/env bash
# SQL access benchmark (part of `make bench`): the cost of publishing the read-only copy for the
# real data (5 coins; median of 5 `coincast export`), the latency of a typical POST /api/sql with
# wrk on 127.0.0.1 (one connection, 5 s), and the rows per second psql receives over the Postgres
# wire for SELECT * FROM market_data (median of 3).
# usage: bench/sql.sh BINARY REAL_DATA_DIR
set -euo pipefail
BIN=$1; DATA=$2
command -v wrk >/dev/null || { SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null 2>&1; }
WORK=$(mktemp -d); PID=""; trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT
export COINCAST__COINGECKO__BASE_URL=http://127.0.0.1:9/api/v3   # nothing leaves loopback
export COINCAST__SERVE__PIPELINE_SCHEDULE="" COINCAST__SERVE__RETRAIN_SCHEDULE=""
"$BIN" --data-dir "$WORK" replay "$DATA" >/dev/null || true
times=()
for _ in 1 2 3 4 5; do
  times+=("$("$BIN" --data-dir "$WORK" export | awk 'NR==1 {print $4}')")
done
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
printf 'publish: the read-only copy of 5 coins (%s MB database, %s MB Parquet): median %s s of 5\n' \
  "$(du -m "$WORK/published/coincast.duckdb" | cut -f1)" "$(du -mL "$WORK/published/parquet/" | cut -f1)" "$median"
PORT=18766
PG_PORT=18767
command -v psql >/dev/null || { SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql-client >/dev/null 2>&1; }
COINCAST__SERVE__PG_BIND=127.0.0.1:$PG_PORT \
  "$BIN" --data-dir "$WORK" serve --bind 127.0.0.1:$PORT 2>"$WORK/serve.log" &
PID=$!
until curl -sf "127.0.0.1:$PORT/health" >/dev/null; do sleep 0.05; done
for query in \
  "SELECT ts, price, market_cap, total_volume FROM market_data WHERE coin_id = 'bitcoin' ORDER BY ts DESC LIMIT 24" \
  "SELECT coin_id, count(*) AS hours, avg(price) AS mean_price FROM market_data GROUP BY coin_id"; do
  cat > "$WORK/sql.lua" <<LUA
wrk.method = "POST"
wrk.body = [[{"sql": "$query"}]]
wrk.headers["Content-Type"] = "application/json"
LUA
  out=$(wrk -t1 -c1 -d5s --latency -s "$WORK/sql.lua" "http://127.0.0.1:$PORT/api/sql")
  printf 'sql: POST /api/sql, 1 connection, 5 s: %s req/s, p50 %s, p99 %s, non-2xx %s: %s\n' \
    "$(echo "$out" | awk '/Requests\/sec/{print $2}')" "$(echo "$out" | awk '$1=="50%"{print $2}')" \
    "$(echo "$out" | awk '$1=="99%"{print $2}')" "$(echo "$out" | awk '/Non-2xx/{print $NF}' | grep . || echo 0)" \
    "${query:0:60}…"
done
rows=$(psql -h 127.0.0.1 -p $PG_PORT -U bench -d coincast -XAt -c "SELECT count(*) FROM market_data")
runs=()
for _ in 1 2 3; do
  started=$(date +%s%N)
  psql -h 127.0.0.1 -p $PG_PORT -U bench -d coincast -XAt -c "SELECT * FROM market_data" >/dev/null
  runs+=("$(( $(date +%s%N) - started ))")
done
ns=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n 2p)
printf 'pg: psql, SELECT * FROM market_data (%s rows): median %.2f s, %.0f rows/s\n' \
  "$rows" "$(echo "$ns / 1000000000" | bc -l)" "$(echo "$rows * 1000000000 / $ns" | bc -l)"
