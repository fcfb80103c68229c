#!/usr/bin/env bash
# The limits of one box (part of `make bench`): an hourly pipeline on N synthetic coins (1,000 by
# default) from a CoinGecko-compatible server on 127.0.0.1 (bench/synthetic_coingecko.py): a
# backfill run, then the next hour's run, each per stage (extract, gate, transform = merge and
# features, monitor, version = the lake commit), with the peak RSS; then the writer's start-up
# publications: the serving publication (what replicas load) and the SQL copy, time and size.
# usage: bench/thousand.sh BINARY PYTHON [COINS] [BACKFILL_DAYS]   (PYTHON: with duckdb)
set -euo pipefail
BIN=$1; PY=$2; N=${3:-1000}; DAYS=${4:-35}
WORK=$(mktemp -d); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
echo 1 >"$WORK/lag"   # the server's newest hour: an hour ago, for the backfill
python3 "$(dirname "$0")/synthetic_coingecko.py" --lag-file "$WORK/lag" >"$WORK/port" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.05; done
COINS=$(python3 -c "print(','.join(f'synth-{i:04d}' for i in range($N)))")
export COINCAST__COINS=$COINS
export COINCAST__COINGECKO__BASE_URL=http://127.0.0.1:$(cat "$WORK/port")/api/v3
export COINCAST__COINGECKO__CALLS_PER_MINUTE=1000000 COINCAST__COINGECKO__BACKFILL_DAYS=$DAYS
export COINCAST__SERVE__PIPELINE_SCHEDULE="" COINCAST__SERVE__RETRAIN_SCHEDULE=""
export COINCAST__PUBLISH__URL=file://$WORK/publication

# Runs `coincast run`; prints its stages from task_runs and its peak RSS.
run() {
  local what=$1 started rss
  started=$(date +%s.%N)
  rss=$(python3 - "$BIN" "$WORK/data" <<'PY'
import resource, subprocess, sys
out = subprocess.run([sys.argv[1], "--data-dir", sys.argv[2], "run"], capture_output=True, text=True)
if out.returncode not in (0, 3):
    sys.stderr.write(out.stdout[-2000:] + out.stderr[-2000:]); sys.exit(1)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
PY
)
  printf '%s: %.1f s, peak RSS %s MB\n' "$what" "$(echo "$(date +%s.%N) - $started" | bc)" "$rss"
  "$PY" - "$WORK/data/coincast.duckdb" <<'PY'
import duckdb, sys
c = duckdb.connect(sys.argv[1], read_only=True)
run = c.sql("SELECT max(run_id) FROM pipeline_runs").fetchone()[0]
for task, secs, state in c.sql(f"""
    SELECT task, sum(epoch(finished_at) - epoch(started_at)), any_value(state)
    FROM task_runs WHERE run_id = {run} GROUP BY task ORDER BY min(started_at)""").fetchall():
    print(f"  {task:<13} {secs:7.2f} s  {state}")
md, ft = c.sql("SELECT (SELECT count(*) FROM market_data), (SELECT count(*) FROM features)").fetchone()
print(f"  rows: market_data {md:,}, features {ft:,}")
PY
}

printf 'one box, %d synthetic coins, %d days of backfill (2 cores):\n' "$N" "$DAYS"
run "backfill run"
echo 0 >"$WORK/lag"
run "hourly run (one new hour per coin)"
du -sm "$WORK/data/coincast.duckdb" "$WORK/data/lake" | awk '{printf "  %s: %s MB\n", $2, $1}'

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
started=$(date +%s.%N)
"$BIN" --data-dir "$WORK/data" serve --bind "127.0.0.1:$PORT" 2>"$WORK/serve.log" &
PIDS+=($!); SERVE=$!
for _ in $(seq 6000); do [ -f "$WORK/publication/manifest.json" ] && break; sleep 0.05; done
for _ in $(seq 600); do
  curl -s "127.0.0.1:$PORT/metrics" | grep -q '^coincast_serving_publication_seconds_count 1' && break
  sleep 0.1
done
curl -s "127.0.0.1:$PORT/metrics" | awk -v start="$(echo "$(date +%s.%N) - $started" | bc)" '
  /^coincast_publish_seconds_sum/ {copy = $2}
  /^coincast_published_bytes/ {copy_bytes = $2}
  /^coincast_serving_publication_seconds_sum/ {pub = $2}
  /^coincast_serving_publication_bytes/ {pub_bytes = $2}
  END {
    printf "writer start-up: SQL copy %.1f s, %.0f MB; serving publication %.1f s, %.1f MB as it travels (both done %.1f s after start)\n",
      copy, copy_bytes / 1e6, pub, pub_bytes / 1e6, start }'
"$PY" -c "import json,sys; m=json.load(open(sys.argv[1])); print(f\"  serving database: {m['database_bytes'] / 1e6:.1f} MB open, {m['database']['bytes'] / 1e6:.1f} MB zstd\")" \
  "$WORK/publication/manifest.json"
printf 'writer: RSS %s MB after its start-up publications\n' "$(awk '/VmRSS/{printf "%.0f", $2/1024}' "/proc/$SERVE/status")"
