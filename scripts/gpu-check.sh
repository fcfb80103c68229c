#!/usr/bin/env bash
# The LSTM on a GPU host, with no Rust toolchain and no downloads there: a coincast binary built
# elsewhere against that host's torch (see ../shared/notes/gpu.md, "What worked"), run on real
# recorded data, and the PyTorch anchor on the same machine in the same call. Prints:
# - the anchor (bench/pytorch_lstm.py): a plain PyTorch LSTM with the large spec's shapes (hidden
#   256 x 2 layers, lookback 168, the spec's inputs, 24 outputs), the training set resident on the
#   device, Adam, gradients clipped at 1.0: samples/s at each batch of ANCHOR_BATCHES;
# - coincast, for each run of RUNS (spec:device): the device it trained on, training samples/s,
#   wall time, and the walk-forward skill and interval score.
#
#   usage: scripts/gpu-check.sh BINARY_DIR DATA_DIR [WINDOWS]
#     BINARY_DIR  holds coincast and lib/libduckdb.so (unpacked from the archive built elsewhere)
#     DATA_DIR    CoinGecko market_chart files (<coin>.json), e.g. a copy of data/real/coingecko
#     WINDOWS     weekly walk-forward windows (default 1: one fit, one week of test origins)
#   env: CANDIDATES (default lstm_quantile), RUNS (default "default:cuda default:cpu large:cuda
#        large-b4096:cuda large:cpu"; specs: default = models/lstm.toml, large =
#        models/lstm-large.toml, large-b4096 = the large spec at batch 4096), LARGE_CPU_SAMPLES
#        (default 20000: the large spec on cpu trains one epoch of that many samples; it is
#        timed, not trained to the end), ANCHOR_BATCHES (default "1024 4096"; empty: no anchor),
#        ANCHOR_RESIDENT (default 120000 samples on the device),
#        PYTHON (default: python3, else /opt/torch/.venv/bin/python3; it locates torch's libraries)
set -euo pipefail
BIN_DIR=$(cd "${1:?binary dir}" && pwd)
DATA=$(cd "${2:?data dir}" && pwd)
WINDOWS=${3:-1}
CANDIDATES=${CANDIDATES:-lstm_quantile}
RUNS=${RUNS:-default:cuda default:cpu large:cuda large-b4096:cuda large:cpu}
LARGE_CPU_SAMPLES=${LARGE_CPU_SAMPLES:-20000}
ANCHOR_BATCHES=${ANCHOR_BATCHES-1024 4096}
ANCHOR_RESIDENT=${ANCHOR_RESIDENT:-120000}
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
# The lake (DuckLake, an extension this host may lack) is not what is measured here.
export COINCAST__DATA_DIR="$WORK/data" COINCAST__COINGECKO__BASE_URL=http://127.0.0.1:9 COINCAST__LAKE__ENABLED=false
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
LARGE="$HERE/models/lstm-large.toml"
if [ -n "$ANCHOR_BATCHES" ] && "$PY" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
  inputs=$(sed -n '/^features = \[/,/^\]/p' "$LARGE" | grep -o '"[a-z0-9_]*"' | wc -l)
  for batch in $ANCHOR_BATCHES; do
    steps=$(( batch >= 4096 ? 100 : 200 ))
    printf 'anchor   cuda   pytorch batch %-5s ' "$batch"
    "$PY" "$HERE/bench/pytorch_lstm.py" --device cuda --resident "$ANCHOR_RESIDENT" \
      --hidden 256 --layers 2 --lookback 168 --in-dim "$inputs" --horizon 24 \
      --batch "$batch" --steps "$steps" --threads 1 || echo "failed"
  done
elif [ -n "$ANCHOR_BATCHES" ]; then
  echo "anchor skipped: no CUDA-enabled torch in $PY"
fi
"$BIN" replay "$DATA" >"$WORK/replay.log" 2>&1 || { tail -5 "$WORK/replay.log"; exit 1; }
echo "replayed $(grep -o '[0-9]* feature rows' "$WORK/replay.log" | head -1) from $DATA"
printf '%-11s %-6s %-14s %-8s %9s %8s %10s %9s %7s %7s\n' \
  spec device candidate trained samples/s wall_s skill IS% cover shrink
for run in $RUNS; do
  spec=${run%%:*} device=${run#*:}
  run_spec="$WORK/$spec-$device.toml"
  case "$spec" in
    default) cp "$HERE/models/lstm.toml" "$run_spec" ;;
    large) cp "$LARGE" "$run_spec" ;;
    large-b4096) sed -e "s/^batch_size = .*/batch_size = 4096/" "$LARGE" >"$run_spec" ;;
    *) echo "unknown spec $spec in RUNS" >&2; exit 2 ;;
  esac
  if [ "$spec:$device" = "large:cpu" ]; then
    sed -i -e "s/^samples_per_epoch = .*/samples_per_epoch = $LARGE_CPU_SAMPLES/" \
        -e "s/^epochs = .*/epochs = 1/" "$run_spec"
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
        print(f"{spec:<11} {device:<6} {c['label']:<14} failed: {c.get('error')}")
        continue
    mean = lambda k: statistics.fmean(r[k] for r in rows)
    sps = statistics.median(c["samples_per_second"]) if c["samples_per_second"] else float("nan")
    weights = [w for refit in c["shrinkage"] for coin in refit for w in coin]
    shrink = statistics.fmean(weights) if weights else float("nan")
    print(f"{spec:<11} {device:<6} {c['label']:<14} {','.join(c.get('devices') or ['?']):<8} "
          f"{sps:9.0f} {wall:8.1f} {mean('skill'):10.4f} {mean('interval_score'):9.4f} "
          f"{mean('coverage'):7.3f} {shrink:7.3f}", flush=True)
PY
  else
    printf '%-11s %-6s %s\n' "$spec" "$device" "failed: $(tail -1 "$WORK/err.log")"
  fi
done
echo "skill = 1 - MSE/MSE(persistence), mean over coins and horizons 1-24 (> 0 beats persistence); IS% = interval score in % of price; shrink = mean weight of the point forecast against persistence (0: validation found nothing it earns); large on cpu: 1 epoch of $LARGE_CPU_SAMPLES samples"
