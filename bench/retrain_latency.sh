#!/usr/bin/env bash
# /predict while the server retrains (part of `make bench`): `coincast serve` on the real data of
# every coin, POST /predict at 8 connections (wrk) for RETRAIN_BASE_SECS with nothing else
# running, then again in slices of RETRAIN_SLICE_SECS from a manual retrain's start (the whole
# selection: every candidate of models/baselines.toml on the walk-forward, in the child process of
# src/pipeline/child.rs) to its end. Prints req/s and p50/p99 of each phase: the median over the
# retrain's slices and its worst slice.
# usage: bench/retrain_latency.sh BINARY REAL_DATA_DIR
set -euo pipefail
BIN=$1; DATA=$2
BASE_SECS=${RETRAIN_BASE_SECS:-20}; SLICE_SECS=${RETRAIN_SLICE_SECS:-10}
command -v wrk >/dev/null || { SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null 2>&1; }
PID=""; WORK=$(mktemp -d); trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT
export COINCAST__SERVE__PIPELINE_SCHEDULE="" COINCAST__SERVE__RETRAIN_SCHEDULE=""
export COINCAST__SERVE__MAX_DATA_AGE_HOURS=1000000      # the recorded data is from 2023
export COINCAST__SERVE__API_TOKEN=bench-admin COINCAST__LAKE__ENABLED=false
export COINCAST__COINGECKO__BASE_URL=http://127.0.0.1:9  # nothing leaves the machine
"$BIN" --data-dir "$WORK" replay "$DATA" >/dev/null
"$BIN" --data-dir "$WORK" train --windows 4 >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BIN" --data-dir "$WORK" serve --bind 127.0.0.1:$PORT 2>"$WORK/serve.log" &
PID=$!
for _ in $(seq 3000); do curl -sf "127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.01; done
curl -sf "127.0.0.1:$PORT/ready" >/dev/null || { echo "serve never got ready:"; tail -5 "$WORK/serve.log"; exit 1; }
printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' \
  "'{\"coin_id\": \"solana\", \"hours_ahead\": 24}'" >"$WORK/predict.lua"
# One wrk slice: "req/s p50 p99 non-2xx" (latencies in ms).
slice() {
  wrk -t2 -c8 -d"$1"s --latency -s "$WORK/predict.lua" "http://127.0.0.1:$PORT/predict" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; return v * 1000 }
    /Requests\/sec/ {rps = $2} $1 == "50%" {p50 = ms($2)} $1 == "99%" {p99 = ms($2)}
    /Non-2xx/ {bad = $NF} END {printf "%s %.3f %.3f %d\n", rps, p50, p99, bad}'
}
# The newest retrain run's state (running until it ends).
retrain_state() {
  curl -sf "127.0.0.1:$PORT/api/pipeline" | python3 -c '
import json, sys
runs = [r for r in json.load(sys.stdin)["runs"] if r["job"] == "retrain"]
print(runs[0]["state"] if runs else "none")'
}
read -r rps p50 p99 bad <<<"$(slice "$BASE_SECS")"
printf '| phase | req/s | p50 ms | p99 ms | non-2xx |\n|---|---|---|---|---|\n'
printf '| no retrain (%s s) | %s | %s | %s | %s |\n' "$BASE_SECS" "$rps" "$p50" "$p99" "$bad"
started=$(date +%s)
curl -sf -X POST -H 'authorization: Bearer bench-admin' -H 'content-type: application/json' \
  -d '{"job": "retrain"}' "127.0.0.1:$PORT/api/pipeline/runs" >/dev/null
: >"$WORK/slices"
while :; do
  slice "$SLICE_SECS" >>"$WORK/slices"
  state=$(retrain_state)
  # Until the worker has recorded the run, it is queued: keep measuring.
  [ "$state" = running ] && continue
  [ "$state" = none ] && [ $(( $(date +%s) - started )) -lt 60 ] && continue
  break
done
python3 - "$WORK/slices" "$SLICE_SECS" "$(( $(date +%s) - started ))" "$state" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
med = lambda k: statistics.median(r[k] for r in rows)
worst = max(rows, key=lambda r: r[2])
print(f"| during the retrain, median of {len(rows)} slices of {sys.argv[2]} s | {med(0):.0f} | "
      f"{med(1):.3f} | {med(2):.3f} | {sum(int(r[3]) for r in rows)} |")
print(f"| during the retrain, worst slice | {worst[0]:.0f} | {worst[1]:.3f} | {worst[2]:.3f} | {int(worst[3])} |")
print(f"retrain: {sys.argv[4]} after about {sys.argv[3]} s (POST /api/pipeline/runs to its end)")
PY
