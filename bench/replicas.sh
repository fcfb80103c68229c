#!/usr/bin/env bash
# Scale-out benchmark (part of `make bench`): a writer publishing to a folder, replicas serving it,
# the real haproxy in front (deploy/haproxy/haproxy.cfg), all on 127.0.0.1. Prints:
# - POST /predict through haproxy with 1, 2 and 3 replicas (wrk), with the CPU each replica and
#   haproxy used: two cores cap the total, so requests per CPU-second is the figure that carries;
# - publication lag: from a promotion's answer on the writer to every replica serving it;
# - the publication's size and time, a replica's start to ready and its RSS.
# usage: bench/replicas.sh BINARY REAL_DATA_DIR [COINS]
set -euo pipefail
BIN=$1; DATA=$2; COINS=${3:-bitcoin,ethereum,cardano,solana,ripple}
command -v wrk >/dev/null || { SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null 2>&1; }
command -v haproxy >/dev/null || { echo "haproxy is missing (scripts/install-system-deps.sh)"; exit 1; }
CFG=$(cd "$(dirname "$0")/.." && pwd)/deploy/haproxy/haproxy.cfg
WORK=$(mktemp -d); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
export COINCAST__COINS=$COINS COINCAST__PUBLISH__URL=file://$WORK/publication
export COINCAST__PUBLISH__POLL_SECS=1 COINCAST__SERVE__API_TOKEN=bench
export COINCAST__SERVE__PIPELINE_SCHEDULE="" COINCAST__SERVE__RETRAIN_SCHEDULE=""
export COINCAST__SERVE__MAX_CONCURRENT_REQUESTS=1024
export COINCAST__COINGECKO__BASE_URL=http://127.0.0.1:9/api/v3
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
rss() { awk '/VmRSS/{printf "%.0f", $2/1024}' "/proc/$1/status"; }
cpu() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }   # user + system seconds (USER_HZ 100)
wait_200() { for _ in $(seq 6000); do curl -sf "$1" >/dev/null && return 0; sleep 0.01; done; return 1; }

"$BIN" --data-dir "$WORK/writer" replay "$DATA" --coins "$COINS" >/dev/null || true
"$BIN" --data-dir "$WORK/writer" train --candidates persistence_ewma,drift_ewma --windows 2 \
  --register-all >/dev/null
CHALLENGER=$("$BIN" --data-dir "$WORK/writer" models list | awk '$1 ~ /^drift_ewma/ {print $1; exit}')
WPORT=$(port)
"$BIN" --data-dir "$WORK/writer" serve --bind "127.0.0.1:$WPORT" 2>"$WORK/writer.log" &
PIDS+=($!)
wait_200 "127.0.0.1:$WPORT/health"
for _ in $(seq 600); do [ -f "$WORK/publication/manifest.json" ] && break; sleep 0.05; done
RPORTS=(); RPIDS=()
for i in 1 2 3; do
  p=$(port); t0=$(now)
  COINCAST__SERVE__INSTANCE=replica-$i "$BIN" --data-dir "$WORK/replica-$i" serve --role replica \
    --bind "127.0.0.1:$p" 2>"$WORK/replica-$i.log" &
  PIDS+=($!); RPIDS+=($!); RPORTS+=("$p")
  wait_200 "127.0.0.1:$p/ready"
  [ "$i" = 1 ] && printf 'replica: start to ready %.2f s (an empty data folder, one load)\n' "$(echo "$(now) - $t0" | bc)"
done
python3 - "$WORK/publication/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
files = 1 + sum(len(x["files"]) for x in m["models"])
total = m["database"]["bytes"] + sum(b["bytes"] for x in m["models"] for _, b in x["files"])
print(f"publication: version {m['version']}, {files} files, {total / 1e6:.2f} MB as it travels "
      f"(database {m['database']['bytes'] / 1e6:.2f} MB zstd, {m['database_bytes'] / 1e6:.1f} MB open)")
PY
curl -s "127.0.0.1:$WPORT/metrics" | awk '/^coincast_serving_publication_seconds_(sum|count)/ {v[$1]=$2}
  END { if (v["coincast_serving_publication_seconds_count"] > 0)
    printf "publication: put out in %.2f s (mean of %d)\n", v["coincast_serving_publication_seconds_sum"] / v["coincast_serving_publication_seconds_count"], v["coincast_serving_publication_seconds_count"] }'

printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' \
  "'{\"coin_id\": \"bitcoin\", \"hours_ahead\": 24}'" >"$WORK/predict.lua"
printf '\nPOST /predict through haproxy (wrk, 8 connections, %s s; 2 cores for wrk, haproxy and the replicas):\n' "${LOAD_SECS:-5}"
printf '| replicas | req/s | p99 | non-2xx | replicas CPU s/s | haproxy CPU s/s | req per replica CPU-second |\n|---|---|---|---|---|---|---|\n'
for n in 1 2 3; do
  servers=()
  for i in 0 1 2; do
    if [ "$i" -lt "$n" ]; then servers+=("127.0.0.1:${RPORTS[$i]}"); else servers+=("127.0.0.1:9"); fi
  done
  LB=$(port)
  COINCAST_LB_BIND=127.0.0.1:$LB COINCAST_WRITER=127.0.0.1:$WPORT COINCAST_REPLICA_1=${servers[0]} \
    COINCAST_REPLICA_2=${servers[1]} COINCAST_REPLICA_3=${servers[2]} haproxy -db -f "$CFG" 2>/dev/null &
  HA=$!; PIDS+=("$HA")
  wait_200 "127.0.0.1:$LB/ready"; sleep 3   # the unused servers are marked down
  before=0; for p in "${RPIDS[@]:0:$n}"; do before=$(echo "$before + $(cpu "$p")" | bc); done
  ha_before=$(cpu "$HA"); t0=$(now)
  out=$(wrk -t2 -c8 -d"${LOAD_SECS:-5}"s --latency -s "$WORK/predict.lua" "http://127.0.0.1:$LB/predict")
  secs=$(echo "$(now) - $t0" | bc)
  after=0; for p in "${RPIDS[@]:0:$n}"; do after=$(echo "$after + $(cpu "$p")" | bc); done
  rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  p99=$(echo "$out" | awk '$1=="99%"{print $2}')
  err=$(echo "$out" | awk '/Non-2xx/{print $NF}' | grep . || echo 0)
  rcpu=$(echo "($after - $before) / $secs" | bc -l); hcpu=$(echo "($(cpu "$HA") - $ha_before) / $secs" | bc -l)
  printf '| %d | %s | %s | %s | %.2f | %.2f | %.0f |\n' "$n" "$rps" "$p99" "$err" "$rcpu" "$hcpu" \
    "$(echo "$rps / $rcpu" | bc -l)"
  kill "$HA"; wait "$HA" 2>/dev/null || true
done
for i in 0 1 2; do printf 'replica-%d: RSS %s MB after the load\n' $((i + 1)) "$(rss "${RPIDS[$i]}")"; done
printf 'writer: RSS %s MB\n' "$(rss "${PIDS[0]}")"

# Publication lag: a promotion's answer on the writer to every replica serving the new champion.
t0=$(now)
curl -sf -X POST -H 'authorization: Bearer bench' -H 'content-type: application/json' -d '{"force": true}' \
  "127.0.0.1:$WPORT/api/models/$CHALLENGER/promote" >/dev/null
promoted=$(echo "$(now) - $t0" | bc)
for p in "${RPORTS[@]}"; do
  for _ in $(seq 3000); do
    curl -s "127.0.0.1:$p/models/status" | python3 -c "import json,sys; sys.exit(0 if json.load(sys.stdin)['champion']['model_id'] == '$CHALLENGER' else 1)" && break
    sleep 0.01
  done
done
printf 'publication lag: promotion answered in %.2f s (published before it returns), every replica serving it %.2f s after the call (poll_secs = 1)\n' \
  "$promoted" "$(echo "$(now) - $t0" | bc)"
