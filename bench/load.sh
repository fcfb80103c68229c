#!/usr/bin/env bash
# Load benchmark of `coincast serve` (part of `make bench`): wrk against POST /predict on
# 127.0.0.1 at fixed concurrency levels; throughput, p50/p99 latency, peak RSS, time to /ready.
# usage: bench/load.sh BINARY REAL_DATA_DIR
set -euo pipefail
BIN=$1; DATA=$2
command -v wrk >/dev/null || { SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null 2>&1; }
PID=""; WORK=$(mktemp -d); trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT
export COINCAST__SERVE__PIPELINE_SCHEDULE=""            # no pipeline runs during the benchmark
export COINCAST__SERVE__RETRAIN_SCHEDULE=""
export COINCAST__SERVE__MAX_DATA_AGE_HOURS=1000000      # the recorded data is from 2023
export COINCAST__SERVE__MAX_CONCURRENT_REQUESTS=1024
export COINCAST__COINS=solana,bitcoin                    # /ready needs every configured coin's data
"$BIN" --data-dir "$WORK" replay "$DATA" --coins solana,bitcoin >/dev/null
"$BIN" --data-dir "$WORK" train --coins solana,bitcoin --epochs 1 --windows 2 >/dev/null
MODEL=$("$BIN" --data-dir "$WORK" models list | awk 'NR==2{print $1}')   # under the header
"$BIN" --data-dir "$WORK" models promote "$MODEL" --force >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
START=$(date +%s.%N)
"$BIN" --data-dir "$WORK" serve --bind 127.0.0.1:$PORT 2>"$WORK/serve.log" &
PID=$!
for _ in $(seq 3000); do curl -sf "127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.01; done
curl -sf "127.0.0.1:$PORT/ready" >/dev/null || { echo "serve never got ready:"; curl -s "127.0.0.1:$PORT/ready"; exit 1; }
READY=$(echo "$(date +%s.%N) - $START" | bc)
printf 'serve: /ready after %.2f s (model + 2 coins loaded)\n' "$READY"
cat > "$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"coin_id": "solana", "hours_ahead": 24}'
wrk.headers["Content-Type"] = "application/json"
LUA
for c in 1 8 32 64; do
  t=$(( c < 2 ? 1 : 2 ))
  out=$(wrk -t$t -c$c -d5s --latency -s "$WORK/post.lua" "http://127.0.0.1:$PORT/predict")
  rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  p50=$(echo "$out" | awk '$1=="50%"{print $2}')
  p99=$(echo "$out" | awk '$1=="99%"{print $2}')
  errs=$(echo "$out" | awk '/Non-2xx/{print $NF}')
  printf 'load: POST /predict, %2d connections, 5 s: %8s req/s, p50 %7s, p99 %7s, non-2xx %s\n' "$c" "$rps" "$p50" "$p99" "${errs:-0}"
done
# The server's ceiling in the same run: GET /health (no model, no JSON body to speak of).
out=$(wrk -t2 -c8 -d5s --latency "http://127.0.0.1:$PORT/health")
health_rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
printf 'load: GET /health, 8 connections, 5 s: %8s req/s, p50 %7s, p99 %7s (the ceiling)\n' "$health_rps" \
  "$(echo "$out" | awk '$1=="50%"{print $2}')" "$(echo "$out" | awk '$1=="99%"{print $2}')"
out=$(wrk -t2 -c8 -d5s --latency -s "$WORK/post.lua" "http://127.0.0.1:$PORT/predict")
predict_rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
printf 'load: POST /predict at 8 connections right after: %s req/s = %.2f x /health\n' "$predict_rps" \
  "$(echo "$predict_rps / $health_rps" | bc -l)"
printf 'serve: peak RSS %s MB after the load\n' "$(awk '/VmHWM/{printf "%.0f", $2/1024}' /proc/$PID/status)"
# Every successful /predict is logged to the predictions table off the hot path.
METRICS=$(curl -sf "127.0.0.1:$PORT/metrics")
logged=$(echo "$METRICS" | awk '$1=="coincast_predictions_logged_total"{print $2}')
dropped=$(echo "$METRICS" | awk '/^coincast_predictions_dropped_total/{s+=$2} END{print s+0}')
printf 'serve: predictions logged to DuckDB during the load: %s, dropped (queue full): %s\n' "${logged:-0}" "$dropped"
