#!/usr/bin/env bash
# Load benchmark of `coincast serve` (part of `make bench`): the load table (wrk against
# POST /predict, /predict/batch, /, /features and /metrics at 1, 8, 64 and 256 connections on
# 127.0.0.1, /health as the ceiling), a soak of POST /predict with RSS sampled every 10 s
# (LOAD_SOAK_SECS, default 600), the features page's readers, time to /ready, logging losses.
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
printf 'serve: RSS %s MB at /ready\n' "$(awk '/VmRSS/{printf "%.0f", $2/1024}' /proc/$PID/status)"
post_script() {  # a wrk script POSTing $2 (JSON) to the URL given on the command line
  printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' "'$2'" > "$WORK/$1.lua"
}
post_script predict '{"coin_id": "solana", "hours_ahead": 24}'
post_script batch '{"coin_id": "solana", "start_date": "2023-12-01", "end_date": "2023-12-01", "hours_ahead": 1}'
cp "$WORK/predict.lua" "$WORK/post.lua"
# One wrk run: prints "rps p50 p99 non2xx" for: connections, path, [script].
measure() {
  local c=$1 path=$2 script=${3:-} t=$(( $1 < 2 ? 1 : 2 )) out
  out=$(wrk -t$t -c$c -d${LOAD_SECS:-5}s --latency ${script:+-s "$WORK/$script.lua"} "http://127.0.0.1:$PORT$path")
  echo "$(echo "$out" | awk '/Requests\/sec/{print $2}') $(echo "$out" | awk '$1=="50%"{print $2}') \
$(echo "$out" | awk '$1=="99%"{print $2}') $(echo "$out" | awk '/Non-2xx/{print $NF}' | grep . || echo 0)"
}
# The load table: each route at 1, 8, 64 and 256 connections, with /health (the server's
# ceiling) at the same concurrency right before it.
printf '\nload table (wrk, %s s each, 127.0.0.1, model + 2 coins):\n' "${LOAD_SECS:-5}"
printf '| route | conns | req/s | p50 | p99 | non-2xx | x /health |\n|---|---|---|---|---|---|---|\n'
for c in 1 8 64 256; do
  read -r h_rps h_p50 h_p99 h_err <<<"$(measure $c /health)"
  printf '| GET /health | %d | %s | %s | %s | %s | 1 |\n' $c "$h_rps" "$h_p50" "$h_p99" "$h_err"
  for route in "POST /predict|/predict|predict" "POST /predict/batch (1 day)|/predict/batch|batch" \
               "GET / (overview)|/|" "GET /features (cached)|/features|" "GET /metrics|/metrics|"; do
    IFS='|' read -r name path script <<<"$route"
    read -r rps p50 p99 err <<<"$(measure $c "$path" "$script")"
    printf '| %s | %d | %s | %s | %s | %s | %.2f |\n' "$name" $c "$rps" "$p50" "$p99" "$err" \
      "$(echo "$rps / $h_rps" | bc -l)"
  done
done
printf 'serve: RSS %s MB after the table, peak %s MB\n' "$(awk '/VmRSS/{printf "%.0f", $2/1024}' /proc/$PID/status)" \
  "$(awk '/VmHWM/{printf "%.0f", $2/1024}' /proc/$PID/status)"
# A soak: POST /predict at 8 connections for LOAD_SOAK_SECS (600 by default), RSS every 10 s.
SOAK=${LOAD_SOAK_SECS:-600}
wrk -t2 -c8 -d${SOAK}s --latency -s "$WORK/predict.lua" "http://127.0.0.1:$PORT/predict" > "$WORK/soak.txt" &
WRK=$!
: > "$WORK/rss.txt"
while kill -0 $WRK 2>/dev/null; do
  awk '/VmRSS/{printf "%.0f\n", $2/1024}' /proc/$PID/status >> "$WORK/rss.txt"; sleep 10
done
wait $WRK || true
printf 'soak: POST /predict, 8 connections, %d s: %s req/s, p50 %s, p99 %s; RSS every 10 s (MB): first %s, median %s, max %s, last %s (%d samples); peak (VmHWM) %s MB\n' \
  "$SOAK" "$(awk '/Requests\/sec/{print $2}' "$WORK/soak.txt")" "$(awk '$1=="50%"{print $2}' "$WORK/soak.txt")" \
  "$(awk '$1=="99%"{print $2}' "$WORK/soak.txt")" "$(head -1 "$WORK/rss.txt")" \
  "$(sort -n "$WORK/rss.txt" | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')" "$(sort -n "$WORK/rss.txt" | tail -1)" \
  "$(tail -1 "$WORK/rss.txt")" "$(wc -l < "$WORK/rss.txt")" "$(awk '/VmHWM/{printf "%.0f", $2/1024}' /proc/$PID/status)"
# The features page while it is being profiled again: 4 readers at once right after a change of
# the data is published (an ingest run through the admin API is not possible offline, so the
# cache is cold only at start-up; here: 4 readers of a dataset version never profiled before).
VERSION=$(curl -sf "127.0.0.1:$PORT/api/features" | python3 -c 'import json,sys; v=json.load(sys.stdin)["versions"]; print(v[-1]["dataset_version"] if v else "")')
if [ -n "$VERSION" ]; then
  four() {  # 4 readers of $1 at once: their times, fastest first
    local pids=()
    for _ in 1 2 3 4; do curl -s -o /dev/null -w '%{time_total}\n' "127.0.0.1:$PORT$1" >> "$WORK/four.txt" & pids+=($!); done
    wait "${pids[@]}"; sort -n "$WORK/four.txt" | tr '\n' ' '; rm -f "$WORK/four.txt"
  }
  printf 'features: 4 readers at once of a dataset version not yet profiled: %s s (one profile, shared); then %s s\n' \
    "$(four "/features?version=$VERSION")" "$(curl -s -o /dev/null -w '%{time_total}' "127.0.0.1:$PORT/features?version=$VERSION")"
  printf 'features: 4 readers at once of the current data: %s s\n' "$(four /features)"
fi
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
