#!/usr/bin/env bash
# The LSTM on a GPU host, with no Rust toolchain and no downloads there: a coincast binary built
# elsewhere against that host's torch (see ../shared/notes/gpu.md, "What worked"), run on real
# recorded data. Prints, for the default and the large spec on cuda and on cpu: the device it
# trained on, training samples/s, wall time, and the walk-forward skill and interval score.
#
#   usage: scripts/gpu-check.sh BINARY_DIR DATA_DIR [WINDOWS]
#     BINARY_DIR  holds coincast and lib/libduckdb.so (unpacked from the archive built elsewhere)
#     DATA_DIR    CoinGecko market_chart files (<coin>.json), e.g. a copy of data/real/coingecko
#     WINDOWS     weekly walk-forward windows (default 1: one fit, one week of test origins)
#   env: CANDIDATES (default lstm_quantile), SPECS (default "default large"), DEVICES (default
#        "cuda cpu"), LARGE_CPU_SAMPLES (default 20000: the large spec on cpu trains one epoch of
#        that many samples; it is timed, not trained to the end),
#        PYTHON (default: python3, else /opt/torch/.venv/bin/python3; it locates torch's libraries)
set -euo pipefail
BIN_DIR=$(cd "${1:?binary dir}" && pwd)
DATA=$(cd "${2:?data dir}" && pwd)
WINDOWS=${3:-1}
CANDIDATES=${CANDIDATES:-lstm_quantile}
SPECS=${SPECS:-default large}
DEVICES=${DEVICES:-cuda cpu}
LARGE_CPU_SAMPLES=${LARGE_CPU_SAMPLES:-20000}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$(command -v python3 || echo /opt/torch/.venv/bin/python3)}
if TL=$("$PY" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null); then
  export LD_LIBRARY_PATH="$BIN_DIR/lib:$TL:${LD_LIBRARY_PATH:-}"
else
  export LD_LIBRARY_PATH="$BIN_DIR/lib:${LD_LIBRARY_PATH:-}"
  echo "note: no torch in $PY; the binary must find libtorch on its own" >&2
fi
BIN="$BIN_DIR/coincast"
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
# Nothing leaves the machine: the API client points at a closed local port.
export COINCAST__DATA_DIR="$WORK/data" COINCAST__COINGECKO__BASE_URL=http://127.0.0.1:9
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
"$BIN" replay "$DATA" >"$WORK/replay.log" 2>&1 || { tail -5 "$WORK/replay.log"; exit 1; }
echo "replayed $(grep -o '[0-9]* feature rows' "$WORK/replay.log" | head -1) from $DATA"
printf '%-8s %-6s %-14s %-8s %9s %8s %10s %9s %7s %7s\n' \
  spec device candidate trained samples/s wall_s skill IS% cover shrink
for spec in $SPECS; do
  spec_file="$HERE/models/lstm.toml"; [ "$spec" = large ] && spec_file="$HERE/models/lstm-large.toml"
  for device in $DEVICES; do
    run_spec="$spec_file"
    if [ "$spec:$device" = "large:cpu" ]; then
      run_spec="$WORK/large-cpu.toml"
      sed -e "s/^samples_per_epoch = .*/samples_per_epoch = $LARGE_CPU_SAMPLES/" \
          -e "s/^epochs = .*/epochs = 1/" "$spec_file" >"$run_spec"
    fi
    start=$(date +%s%N)
    if "$BIN" evaluate --candidates "$CANDIDATES" --windows "$WINDOWS" --spec "$run_spec" \
         --device "$device" --horizons "$(seq -s, 1 24)" --json \
         >"$WORK/out.json" 2>"$WORK/err.log"; then
      wall_ms=$(( ($(date +%s%N) - start) / 1000000 ))
      "$PY" - "$WORK/out.json" "$spec" "$device" "$wall_ms" <<'PY'
import json, statistics, sys
out, spec, device, wall = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], float(sys.argv[4]) / 1000
for c in out["candidates"]:
    rows = [r for r in out["rows"] if r["model"] == c["label"]]
    if c.get("error") or not rows:
        print(f"{spec:<8} {device:<6} {c['label']:<14} failed: {c.get('error')}")
        continue
    mean = lambda k: statistics.fmean(r[k] for r in rows)
    sps = statistics.median(c["samples_per_second"]) if c["samples_per_second"] else float("nan")
    weights = [w for refit in c["shrinkage"] for coin in refit for w in coin]
    shrink = statistics.fmean(weights) if weights else float("nan")
    print(f"{spec:<8} {device:<6} {c['label']:<14} {','.join(c.get('devices') or ['?']):<8} "
          f"{sps:9.0f} {wall:8.1f} {mean('skill'):10.4f} {mean('interval_score'):9.4f} "
          f"{mean('coverage'):7.3f} {shrink:7.3f}")
PY
    else
      printf '%-8s %-6s %s\n' "$spec" "$device" "failed: $(tail -1 "$WORK/err.log")"
    fi
  done
done
echo "skill = 1 - MSE/MSE(persistence), mean over coins and horizons 1-24 (> 0 beats persistence); IS% = interval score in % of price; shrink = mean weight of the point forecast against persistence (0: validation found nothing it earns); large on cpu: 1 epoch of $LARGE_CPU_SAMPLES samples"
