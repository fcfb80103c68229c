#!/usr/bin/env bash
# Access (part of `make bench`), on 127.0.0.1: what a named token costs a request (POST /predict
# with a read token against the same server without tokens, wrk at 8 connections), and the
# Postgres wire under a flood of connections that never start up (the server's RSS, how many it
# refuses at its cap, how fast the start-up limit closes the rest).
# usage: bench/access.sh BINARY REAL_DATA_DIR
set -euo pipefail
BIN=$1; DATA=$2
command -v wrk >/dev/null || { SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null 2>&1; }
WORK=$(mktemp -d); PID=""
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT
export COINCAST__COINS=solana,bitcoin COINCAST__SERVE__MAX_DATA_AGE_HOURS=1000000
export COINCAST__SERVE__PIPELINE_SCHEDULE="" COINCAST__SERVE__RETRAIN_SCHEDULE=""
export COINCAST__SERVE__MAX_CONCURRENT_REQUESTS=1024 COINCAST__COINGECKO__BASE_URL=http://127.0.0.1:9/api/v3
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rss() { awk '/VmRSS/{printf "%.0f", $2/1024}' "/proc/$1/status"; }
"$BIN" --data-dir "$WORK/d" replay "$DATA" --coins solana,bitcoin >/dev/null || true
"$BIN" --data-dir "$WORK/d" train --candidates persistence_ewma --windows 2 >/dev/null
TOKEN=$(COINCAST__SERVE__TOKENS_FILE="$WORK/tokens.toml" "$BIN" --data-dir "$WORK/d" tokens add bench --scope read 2>/dev/null)
printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' \
  "'{\"coin_id\": \"solana\", \"hours_ahead\": 24}'" >"$WORK/open.lua"
cp "$WORK/open.lua" "$WORK/token.lua"
printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$TOKEN" >>"$WORK/token.lua"
serve() {  # serve data folder $1 with the environment given (sets P and PID), wait for /ready
  local dir=$1; shift; P=$(port)
  env "$@" "$BIN" --data-dir "$WORK/$dir" serve --bind "127.0.0.1:$P" >/dev/null 2>"$WORK/serve.log" & PID=$!
  for _ in $(seq 3000); do curl -sf -H "Authorization: Bearer $TOKEN" "127.0.0.1:$P/ready" >/dev/null && break; sleep 0.01; done
}
rps() { wrk -t2 -c8 -d${LOAD_SECS:-5}s --latency -s "$WORK/$2.lua" "http://127.0.0.1:$1/predict" | awk '/Requests\/sec/{r=$2} $1=="99%"{p=$2} END{print r, p}'; }
# Both servers at once, measured in turns (three each): the medians carry.
cp -r "$WORK/d" "$WORK/d2"   # one DuckDB file per process
serve d COINCAST__SERVE__INSTANCE=open; OPEN_P=$P; OPEN_PID=$PID
serve d2 COINCAST__SERVE__TOKENS_FILE="$WORK/tokens.toml"; TOKEN_P=$P
for _ in 1 2 3; do rps "$OPEN_P" open >>"$WORK/open.txt"; rps "$TOKEN_P" token >>"$WORK/token.txt"; done
median() { sort -n -k"$2" "$1" | awk -v k="$2" '{a[NR]=$k} END{print a[2]}'; }
open_rps=$(median "$WORK/open.txt" 1); token_rps=$(median "$WORK/token.txt" 1)
printf 'POST /predict, 8 connections, medians of 3: %s req/s (p99 %s) without tokens; %s req/s (p99 %s) with a named read token = %.2f x\n' \
  "$open_rps" "$(median "$WORK/open.txt" 2)" "$token_rps" "$(median "$WORK/token.txt" 2)" "$(echo "$token_rps / $open_rps" | bc -l)"
kill "$OPEN_PID" "$PID"; wait "$OPEN_PID" "$PID" 2>/dev/null || true

PG=$(port)
serve d COINCAST__SERVE__TOKENS_FILE="$WORK/tokens.toml" COINCAST__SERVE__PG_BIND="127.0.0.1:$PG"
before=$(rss $PID)
python3 - "$PG" "$PID" <<'PY'
import socket, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
socks = []
opened = time.time()
for _ in range(500):
    s = socket.create_connection(("127.0.0.1", port)); s.setblocking(False); socks.append(s)
time.sleep(1.0)
def closed(s):
    try:
        return s.recv(64) is not None and True
    except BlockingIOError:
        return False
    except OSError:
        return True
refused = sum(1 for s in socks if closed(s))
print(f"pg flood: 500 connections that never start up: {refused} refused at once (serve.pg_max_connections = 64), RSS {rss()} MB after 1 s")
start = time.time()
while time.time() - start < 30 and not all(closed(s) for s in socks):
    time.sleep(0.1)
print(f"pg flood: all 500 closed {time.time() - opened:.1f} s after the first opened (pg_startup_timeout_secs = 10); RSS {rss()} MB")
PY
printf 'pg flood: RSS %s MB before\n' "$before"
curl -s -H "Authorization: Bearer $TOKEN" "127.0.0.1:$P/metrics" | grep '^coincast_pg_connections_closed_total' || true
