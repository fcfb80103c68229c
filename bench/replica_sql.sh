#!/usr/bin/env bash
# SQL on a replica through the lake (part of `make bench`): a writer whose lake has a PostgreSQL
# catalog and its data on S3 (Debian's PostgreSQL and SeaweedFS, both on 127.0.0.1), and a replica
# that reads it. Prints, for the same queries on the writer (its published copy) and on the
# replica (the lake), the median of the server's own query time over 20 runs, and the replica's
# first query after its start.
# usage: bench/replica_sql.sh BINARY REAL_DATA_DIR WEED_BINARY [COINS]
set -euo pipefail
BIN=$1; DATA=$2; WEED=$3; COINS=${4:-bitcoin,ethereum,cardano,solana,ripple}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | tail -1)
WORK=$(mktemp -d); chmod 755 "$WORK"; PIDS=()
. "$(dirname "$0")/lib/seaweedfs.sh"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_200() { for _ in $(seq 6000); do curl -sf "$1" >/dev/null && return 0; sleep 0.01; done; return 1; }

PGPORT=$(port)
mkdir -p "$WORK/pg" && [ "$(id -u)" = 0 ] && chown postgres "$WORK/pg"
as_pg "$PGBIN/initdb" -D "$WORK/pg" -A trust -U postgres --no-sync >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -o "-p $PGPORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c fsync=off" \
  -l "$WORK/pg/log" -w start >/dev/null
psql -h 127.0.0.1 -p "$PGPORT" -U postgres -qc "CREATE DATABASE lake"

start_seaweedfs "$WEED" "$WORK/s3"
PIDS+=("$WEED_PID")

export COINCAST__COINS=$COINS AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret
export COINCAST__LAKE__CATALOG="postgres:dbname=lake host=127.0.0.1 port=$PGPORT user=postgres"
export COINCAST__LAKE__DATA_PATH=s3://lake/data COINCAST__S3__ENDPOINT=http://127.0.0.1:$S3_PORT
export COINCAST__S3__URL_STYLE=path COINCAST__S3__ALLOW_HTTP=true
export COINCAST__PUBLISH__URL=file://$WORK/publication COINCAST__PUBLISH__POLL_SECS=1
export COINCAST__SERVE__PIPELINE_SCHEDULE="" COINCAST__SERVE__RETRAIN_SCHEDULE=""
export COINCAST__COINGECKO__BASE_URL=http://127.0.0.1:9/api/v3
"$BIN" --data-dir "$WORK/writer" replay "$DATA" --coins "$COINS" >/dev/null || true
"$BIN" --data-dir "$WORK/writer" train --candidates persistence_ewma --windows 2 >/dev/null
W=$(port); R=$(port)
"$BIN" --data-dir "$WORK/writer" serve --bind "127.0.0.1:$W" 2>"$WORK/writer.log" & PIDS+=($!)
wait_200 "127.0.0.1:$W/health"
T0=$(date +%s.%N)
"$BIN" --data-dir "$WORK/replica" serve --role replica --bind "127.0.0.1:$R" 2>"$WORK/replica.log" &
PIDS+=($!)
sql() { curl -s -H 'content-type: application/json' -d "$(python3 -c 'import json,sys; print(json.dumps({"sql": sys.argv[1]}))' "$2")" "127.0.0.1:$1/api/sql"; }
for _ in $(seq 600); do sql "$R" "SELECT 1" | grep -q '"rows"' && break; sleep 0.05; done
printf 'replica: SQL on the lake answers %.2f s after its start\n' "$(echo "$(date +%s.%N) - $T0" | bc)"
for _ in $(seq 600); do sql "$W" "SELECT 1" | grep -q '"rows"' && break; sleep 0.05; done
printf '%-58s %12s %12s %8s\n' "query (median of 20, server's elapsed_ms)" "writer copy" "replica lake" "rows"
while IFS= read -r q; do
  for side in "$W" "$R"; do
    for _ in $(seq 20); do sql "$side" "$q"; echo; done >"$WORK/out.$side"
  done
  python3 - "$q" "$WORK/out.$W" "$WORK/out.$R" <<'PY'
import json, statistics, sys
q, w, r = sys.argv[1], sys.argv[2], sys.argv[3]
def med(path):
    runs = [json.loads(l) for l in open(path) if l.strip()]
    return statistics.median(x["elapsed_ms"] for x in runs), runs[0]["rows"]
(wm, wr), (rm, rr) = med(w), med(r)
def close(a, b):
    # A float aggregate may differ in its last digits: summation order follows the files read.
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    return a == b
same = "same rows" if close(wr, rr) else "DIFFERENT rows"
print(f"{q[:58]:<58} {wm:10.2f} ms {rm:10.2f} ms {len(wr):>5}  {same}")
PY
done <<'QUERIES'
SELECT count(*), count(DISTINCT coin_id) FROM market_data
SELECT ts, price FROM market_data WHERE coin_id = 'bitcoin' ORDER BY ts DESC LIMIT 168
SELECT coin_id, count(*), avg(price) FROM market_data GROUP BY ALL ORDER BY ALL
SELECT coin_id, count(*) FROM features GROUP BY ALL ORDER BY ALL
SELECT rule, count(*) FILTER (WHERE NOT passed) FROM quality_results GROUP BY ALL ORDER BY ALL
QUERIES
