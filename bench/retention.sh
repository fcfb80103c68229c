#!/usr/bin/env bash
# Retention's benchmark (part of `make bench`): what `coincast cleanup` frees after a simulated
# year. The real data (5 coins) is replayed, then RUNS runs (default 52) of HOURS new hours each
# (default 168: a year of weekly runs), each hour a random walk from the coin's last price; every
# run also sends the previous run's hours again with the newest two revised (+0.05 %), as
# CoinGecko revises its recent points, so each version replaces some hours. Every run commits a
# dataset version. Then cleanup with every threshold at zero (all merged raw bodies move, every
# snapshot but the newest expires, old files go, small ones merge). Prints the lake's files and
# bytes on disk, the catalog's, the live file's bytes and blocks, and each step's time.
# usage: bench/retention.sh BINARY REAL_DATA_DIR [RUNS] [HOURS]
set -euo pipefail
BIN=$1; DATA=$2; RUNS=${3:-52}; HOURS=${4:-168}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export COINCAST__COINGECKO__BASE_URL=http://127.0.0.1:9/api/v3   # nothing leaves loopback
DIR="$WORK/year"

"$BIN" --data-dir "$DIR" replay "$DATA" >/dev/null 2>&1 || true
python3 - "$DATA" "$WORK/days" "$RUNS" "$HOURS" <<'PY'
import json, math, os, random, sys
src, out, runs, hours = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
random.seed(11)
last, previous = {}, {}
for name in sorted(os.listdir(src)):
    if name.endswith(".json"):
        body = json.load(open(os.path.join(src, name)))
        t, p = body["prices"][-1]
        last[name] = (int(t) // 3_600_000 * 3_600_000, float(p), float(body["market_caps"][-1][1]),
                      float(body["total_volumes"][-1][1]))
        previous[name] = []
# RUNS folders, and one more (`next`) for the run between the two cleanups.
for run in range(runs + 1):
    folder = os.path.join(out, f"{run:03d}") if run < runs else os.path.join(os.path.dirname(out), "next")
    os.makedirs(folder)
    for name, (t, p, cap, vol) in last.items():
        again = [(a, b * 1.0005, c * 1.0005, d) if i >= len(previous[name]) - 2 else (a, b, c, d)
                 for i, (a, b, c, d) in enumerate(previous[name])]
        pts = []
        for _ in range(hours):
            t += 3_600_000
            step = math.exp(random.gauss(0, 0.01))
            p *= step; cap *= step
            pts.append((t, p, cap, vol))
        last[name] = (t, p, cap, vol)
        previous[name] = pts
        sent = again + pts
        json.dump({"prices": [[a, b] for a, b, _, _ in sent],
                   "market_caps": [[a, c] for a, _, c, _ in sent],
                   "total_volumes": [[a, d] for a, _, _, d in sent]},
                  open(os.path.join(folder, name), "w"))
PY

started=$(date +%s)
for day in "$WORK"/days/*; do
  "$BIN" --data-dir "$DIR" replay "$day" >/dev/null 2>&1 || true
done
year_s=$(( $(date +%s) - started ))

lake_files() { find "$DIR/lake/data" -name '*.parquet' | wc -l; }
lake_bytes() { du -sb "$DIR/lake/data" | cut -f1; }
catalog_bytes() { du -sb "$DIR/lake/catalog.ducklake" | cut -f1; }
file_bytes() { du -sb "$DIR/coincast.duckdb" | cut -f1; }
versions() { "$BIN" --data-dir "$DIR" datasets list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }

printf 'retention: %s runs (5 coins, %s new hours each, the previous run'"'"'s newest 2 revised) in %s s; %s dataset versions\n' "$RUNS" "$HOURS" "$year_s" "$(versions)"
printf 'before cleanup: lake %s Parquet files, %s bytes; catalog %s bytes; file %s bytes\n' \
  "$(lake_files)" "$(lake_bytes)" "$(catalog_bytes)" "$(file_bytes)"

export COINCAST__RETENTION__RAW_BODY_DAYS=0 COINCAST__RETENTION__SNAPSHOT_DAYS=0
# Two cleanups a run apart: the files a rewrite replaces stay while the version before it is the
# newest (it still reads them), and the next cleanup deletes them.
cleanup() { # LABEL
  local started; started=$(date +%s%N)
  "$BIN" --data-dir "$DIR" cleanup --json > "$WORK/cleanup.json"
  local ms=$(( ($(date +%s%N) - started) / 1000000 ))
  python3 - "$WORK/cleanup.json" "$ms" "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
lake = r["lake"]
print(f"{sys.argv[3]} in {sys.argv[2]} ms: {r['bodies']['batches']} raw bodies ({r['bodies']['bytes']} bytes) "
      f"moved to the lake; {len(lake['expired'])} snapshots expired; catalog's files "
      f"{lake['before']['files']} -> {lake['after']['files']}, bytes {lake['before']['bytes']} -> {lake['after']['bytes']}; "
      f"file {r['file_before']['bytes']} -> {r['file_after']['bytes']} bytes, used blocks "
      f"{r['file_before']['used_blocks']} -> {r['file_after']['used_blocks']}, free blocks "
      f"{r['file_before']['free_blocks']} -> {r['file_after']['free_blocks']}")
PY
  printf '  then: lake %s Parquet files, %s bytes on disk; catalog %s bytes; file %s bytes; %s dataset version(s)\n' \
    "$(lake_files)" "$(lake_bytes)" "$(catalog_bytes)" "$(file_bytes)" "$(versions)"
}
cleanup "first cleanup"
"$BIN" --data-dir "$DIR" replay "$WORK/next" >/dev/null 2>&1 || true   # the next run
cleanup "second cleanup, after one more run"
newest=$("$BIN" --data-dir "$DIR" datasets list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["version"])')
started=$(date +%s%N)
"$BIN" --data-dir "$DIR" datasets export "$newest" --to "$WORK/export" | tail -1
printf 'rebuild the newest version after cleanup: %s ms\n' "$(( ($(date +%s%N) - started) / 1000000 ))"
