#!/usr/bin/env bash
# The lake's benchmark (part of `make bench`): what a dataset version costs. For the real data
# (5 coins) and 100 synthetic coins (90 days each), on local disk and on S3 (SeaweedFS on
# 127.0.0.1): the full backfill's commit, an hourly run's commit (one new hour per coin; median of
# 5), the bytes each hourly version adds, and the time to rebuild a version (`datasets export`,
# which hashes the files again). The `version` task's own duration comes from task_runs.
# usage: bench/lake.sh BINARY REAL_DATA_DIR DUCKDB_CLI WEED
set -euo pipefail
BIN=$1; DATA=$2; DUCKDB=$3; WEED=$4
WORK=$(mktemp -d); WEED_PID=""
trap '[ -n "$WEED_PID" ] && kill $WEED_PID 2>/dev/null; rm -rf "$WORK"' EXIT
export COINCAST__COINGECKO__BASE_URL=http://127.0.0.1:9/api/v3   # nothing leaves loopback
. "$(dirname "$0")/lib/seaweedfs.sh"

# The version task's seconds in the newest run of a data folder.
version_seconds() {
  "$DUCKDB" -readonly "$1/coincast.duckdb" -noheader -list -c \
    "SELECT round(epoch(finished_at - started_at), 3) FROM task_runs WHERE task = 'version' ORDER BY started_at DESC LIMIT 1"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Files of one more hour for every coin of a data folder: each coin's newest 48 points and one
# point an hour after the newest (price +0.1 %), as a provider's next hourly answer.
next_hour_files() { # DATA_DIR OUT_DIR
  "$DUCKDB" -readonly "$1/coincast.duckdb" -noheader -csv -c \
    "SELECT coin_id, epoch_ms(ts), price, market_cap, total_volume FROM market_data
     QUALIFY row_number() OVER (PARTITION BY coin_id ORDER BY ts DESC) <= 48 ORDER BY coin_id, ts" |
  python3 -c '
import csv, json, sys, collections
out = sys.argv[1]; series = collections.defaultdict(list)
for coin, ms, p, cap, vol in csv.reader(sys.stdin):
    series[coin].append((int(ms), float(p), float(cap), float(vol)))
for coin, pts in series.items():
    ms, p, cap, vol = pts[-1]
    pts.append((ms + 3600000, p * 1.001, cap * 1.001, vol))
    body = {"prices": [[t, a] for t, a, _, _ in pts], "market_caps": [[t, c] for t, _, c, _ in pts],
            "total_volumes": [[t, v] for t, _, _, v in pts]}
    json.dump(body, open(f"{out}/{coin}.json", "w"))
' "$2"
}

# 100 synthetic coins, 90 days of hourly points each, a deterministic random walk.
synthetic_coins() { # OUT_DIR
  python3 -c '
import json, math, random, sys
out = sys.argv[1]; random.seed(7); start = 1_700_000_000_000 // 3_600_000 * 3_600_000
for i in range(100):
    p = 100.0; pts = []
    for h in range(90 * 24):
        p *= math.exp(random.gauss(0, 0.01)); pts.append((start + h * 3_600_000, p))
    body = {"prices": [[t, v] for t, v in pts], "market_caps": [[t, v * 1e6] for t, v in pts],
            "total_volumes": [[t, v * 1e3] for t, v in pts]}
    json.dump(body, open(f"{out}/synth{i:03d}.json", "w"))
' "$1"
}

# One scenario: backfill, five hourly runs, bytes per version, rebuild.
scenario() { # NAME SOURCE_DIR COINS_FLAG...
  local name=$1 src=$2; shift 2
  local dir="$WORK/$name"
  "$BIN" --data-dir "$dir" replay "$src" "$@" >/dev/null 2>&1 || true
  local backfill; backfill=$(version_seconds "$dir")
  local hourly=() bytes=()
  for i in 1 2 3 4 5; do
    rm -rf "$WORK/next" && mkdir -p "$WORK/next"
    next_hour_files "$dir" "$WORK/next"
    local before; before=$(lake_bytes "$dir")
    "$BIN" --data-dir "$dir" replay "$WORK/next" >/dev/null 2>&1 || true
    hourly+=("$(version_seconds "$dir")")
    bytes+=("$(( $(lake_bytes "$dir") - before ))")
  done
  local newest; newest=$("$BIN" --data-dir "$dir" datasets list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["version"])')
  local started; started=$(date +%s%N)
  "$BIN" --data-dir "$dir" datasets export "$newest" --to "$WORK/export-$name" >/dev/null
  local rebuild; rebuild=$(( ($(date +%s%N) - started) / 1000000 ))
  printf 'lake %-10s backfill commit %6s s; hourly commit median %6s s of 5; %8s bytes per hourly version (median); rebuild a version (export + hash) %s ms\n' \
    "$name:" "$backfill" "$(printf '%s\n' "${hourly[@]}" | median)" "$(printf '%s\n' "${bytes[@]}" | median)" "$rebuild"
}

LAKE_BYTES_S3=""
lake_bytes() { # DATA_DIR: the Parquet (local, or the S3 server's volume) and the catalog
  local data
  if [ -n "$LAKE_BYTES_S3" ]; then data=$(du -sb "$LAKE_BYTES_S3" | cut -f1); else data=$(du -sb "$1/lake/data" | cut -f1); fi
  echo $(( data + $(du -sb "$1/lake/catalog.ducklake" 2>/dev/null | cut -f1 || echo 0) ))
}

mkdir -p "$WORK/synth" && synthetic_coins "$WORK/synth"
scenario local-5 "$DATA"
scenario local-100 "$WORK/synth"

# The same on S3.
start_seaweedfs "$WEED" "$WORK/s3"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret COINCAST__S3__ENDPOINT="http://127.0.0.1:$S3_PORT" \
  COINCAST__S3__URL_STYLE=path COINCAST__S3__ALLOW_HTTP=true
LAKE_BYTES_S3="$WORK/s3/data"
COINCAST__LAKE__DATA_PATH=s3://lake/five scenario s3-5 "$DATA"
COINCAST__LAKE__DATA_PATH=s3://lake/hundred scenario s3-100 "$WORK/synth"
