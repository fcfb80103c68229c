#!/usr/bin/env bash
# The container test (`make test-image`): the image run by a real engine (podman) with a real
# volume. Traffic stays on loopback: --network=host with a 127.0.0.1 bind, or --network=none;
# CoinGecko is a loopback port nothing listens on. Prints the figures at the end.
# Usage: tests/container/run.sh IMAGE REAL_DATA_DIR PYTHON (a Python with duckdb and pyyaml)
set -euo pipefail
# Podman logs its missing systemd (health timers) at error level on every run; its real failures
# still show in exit codes.
podman() { command podman --log-level=fatal "$@"; }
IMAGE=$1 SEED=$2 PYTHON=$3
PORT=${COINCAST_IMAGE_TEST_PORT:-18431}
PREFIX=coincast-test-$$
VOL=$PREFIX-data
WORK=$(mktemp -d)
# runc with explicit ulimits: crun and the default limits fail on these hosts (shared/notes).
# No health timers (they need systemd): the test runs `podman healthcheck run` itself.
RUN=(podman run --runtime runc --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 --health-interval=disable)
OFFLINE=(-e COINCAST__COINGECKO__BASE_URL=http://127.0.0.1:9/api/v3 -e COINCAST__COINGECKO__MAX_RETRIES=0)
figures=()
failures=0

cleanup() {
  podman rm -f -t 0 "$PREFIX-serve" "$PREFIX-ro" "$PREFIX-user" "$PREFIX-offline" >/dev/null 2>&1 || true
  [ -f "$WORK/play.yaml" ] && CONTAINERS_CONF=$WORK/containers.conf podman kube down "$WORK/play.yaml" >/dev/null 2>&1 || true
  podman volume rm -f "$VOL" "$PREFIX-publication" >/dev/null 2>&1 || true
  chmod -R u+w "$WORK" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

check() { # check "what" command...
  local what=$1
  shift
  if "$@"; then
    echo "ok    $what"
  else
    echo "FAIL  $what"
    failures=$((failures + 1))
  fi
}

health() { curl -fsS --max-time 2 "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; }

serves_again() { wait_health "$(date +%s%N)" >/dev/null; }

since() { awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }

# Seconds until /health answers (at most 120 s), or fails.
wait_health() {
  local started=$1
  for _ in $(seq 1 1200); do
    if health; then
      since "$started"
      return 0
    fi
    sleep 0.1
  done
  return 1
}

replay_seed() { # exit 0, or 3 when a batch was quarantined: either way the coins are loaded
  local rc=0
  "${RUN[@]}" --rm --network=none -v "$VOL:/data" -v "$SEED:/seed:ro" "$IMAGE" replay /seed \
    >"$WORK/replay.log" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || { tail -5 "$WORK/replay.log"; return 1; }
}

serve() { # serve NAME extra-run-args...
  local name=$1
  shift
  podman rm -f -t 0 "$name" >/dev/null 2>&1 || true
  "${RUN[@]}" -d --name "$name" --network=host "${OFFLINE[@]}" \
    -e COINCAST__SERVE__MAX_DATA_AGE_HOURS=100000 -e COINCAST__SERVE__RETRAIN_SCHEDULE= \
    "$@" "$IMAGE" serve --bind "127.0.0.1:$PORT" >/dev/null
}

champion() {
  curl -fsS "http://127.0.0.1:$PORT/models/status" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["champion"]["model_id"])'
}

mountpoint=""
counts() { # rows of market_data and features, read by DuckDB's Python client (read-only)
  "$PYTHON" - "$mountpoint/coincast.duckdb" <<'PY'
import duckdb, sys
c = duckdb.connect(sys.argv[1], read_only=True)
print(c.sql("SELECT (SELECT count(*) FROM market_data) || '/' || (SELECT count(*) FROM features)").fetchone()[0])
PY
}

echo "::: the compose file"
check "config/compose/compose.yaml parses and mounts files that exist" \
  "$PYTHON" "$(dirname "$0")/../../config/compose/check.py"

echo "::: image $IMAGE: $(podman image inspect "$IMAGE" --format '{{.Size}}') bytes"
figures+=("image size: $(($(podman image inspect "$IMAGE" --format '{{.Size}}') / 1000000)) MB")
podman volume create "$VOL" >/dev/null
mountpoint=$(podman volume inspect "$VOL" --format '{{.Mountpoint}}')

echo "::: the real data replayed into the volume, and a champion trained"
started=$SECONDS
check "replay /seed loads the real data into the volume" replay_seed
figures+=("replay of the real data in the container: $((SECONDS - started)) s")
started=$SECONDS
check "train (classical candidates, 4 windows) registers a champion" \
  "${RUN[@]}" --rm --network=none -v "$VOL:/data" "$IMAGE" train --coins bitcoin,solana \
  --candidates persistence,persistence_ewma --windows 4
figures+=("train (2 coins, classical): $((SECONDS - started)) s")
figures+=("volume after the real data and a model: $(du -sm "$mountpoint" | cut -f1) MB")
before=$(counts)

echo "::: serve as non-root, /health, podman healthcheck, POST /predict"
t0=$(date +%s%N)
serve "$PREFIX-serve" -v "$VOL:/data"
if secs=$(wait_health "$t0"); then
  figures+=("start to /health: $secs s")
else
  echo "FAIL  /health never answered"; podman logs "$PREFIX-serve" | tail -20; exit 1
fi
for _ in $(seq 1 600); do
  curl -fsS "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
figures+=("start to /ready (max_data_age_hours raised): $(since "$t0") s")
check "runs as uid 10001" test "$(podman exec "$PREFIX-serve" id -u)" = 10001
check "podman healthcheck run: healthy" podman healthcheck run "$PREFIX-serve"
check "POST /predict answers 200" \
  curl -fsS -o "$WORK/predict.json" -H 'content-type: application/json' \
  -d '{"coin_id": "bitcoin", "hours_ahead": 1}' "http://127.0.0.1:$PORT/predict"
first_champion=$(champion)
pid=$(podman inspect "$PREFIX-serve" --format '{{.State.Pid}}')
for _ in $(seq 1 200); do
  curl -fsS -o /dev/null -H 'content-type: application/json' -d '{"coin_id": "solana", "hours_ahead": 24}' \
    "http://127.0.0.1:$PORT/predict"
done
figures+=("RSS while serving (after 200 predictions): $(($(awk '/VmRSS/ {print $2}' "/proc/$pid/status") / 1024)) MB")

echo "::: SIGTERM: graceful, checkpointed, exit 0; a restart serves the same champion and rows"
podman stop -t 30 "$PREFIX-serve" >/dev/null
check "exit code 0 after stop" test "$(podman inspect "$PREFIX-serve" --format '{{.State.ExitCode}}')" = 0
check "the log shows the checkpoint" bash -c "podman logs $PREFIX-serve 2>&1 | grep -q 'database checkpointed'"
after_stop=$(counts)
check "the same rows after a graceful stop ($before)" test "$after_stop" = "$before"
serve "$PREFIX-serve" -v "$VOL:/data"
wait_health "$(date +%s%N)" >/dev/null
check "the same champion after a restart" test "$(champion)" = "$first_champion"

echo "::: SIGKILL, then a restart recovers"
podman kill -s KILL "$PREFIX-serve" >/dev/null
podman wait "$PREFIX-serve" >/dev/null 2>&1 || true
serve "$PREFIX-serve" -v "$VOL:/data"
check "serves again after kill -9" serves_again
check "the same champion after kill -9" test "$(champion)" = "$first_champion"
podman stop -t 30 "$PREFIX-serve" >/dev/null
check "the file opens in DuckDB's Python client with the same rows" test "$(counts)" = "$before"

echo "::: a read-only root file system, another user"
serve "$PREFIX-ro" --read-only -v "$VOL:/data"
check "serves with --read-only and a writable /data" serves_again
podman stop -t 30 "$PREFIX-ro" >/dev/null
mkdir -p "$WORK/other" && chmod 0777 "$WORK/other"
serve "$PREFIX-user" --user 12345:12345 -v "$WORK/other:/data"
check "serves as --user 12345 on a writable folder" serves_again
podman stop -t 30 "$PREFIX-user" >/dev/null

echo "::: DuckDB follows the container's limits"
engine=$("${RUN[@]}" --rm --network=none --cpus 1 --memory 512m -v "$VOL:/data" "$IMAGE" status | grep '^engine')
echo "      $engine"
check "one CPU: one DuckDB thread" bash -c "printf '%s' \"\$1\" | grep -q ' 1 thread(s)'" _ "$engine"
check "512 MB: a memory limit below it, spills in /data" \
  bash -c "printf '%s' \"\$1\" | grep -Eq 'memory limit [0-9.]+ MiB, spills to /data/'" _ "$engine"

echo "::: bad input"
mkdir -p "$WORK/locked" && chmod 0555 "$WORK/locked"
set +e
# `run` creates the database (read-only commands such as `status` never do: exit 2 there).
out=$("${RUN[@]}" --rm --network=none -v "$WORK/locked:/data" "$IMAGE" run 2>&1)
rc=$?
set -e
check "an unwritable volume: exit 1" test "$rc" = 1
check "an unwritable volume: one clear error line, no panic" \
  bash -c "[ \$(printf '%s\n' \"\$1\" | grep -c '^error:') = 1 ] && ! printf '%s' \"\$1\" | grep -q panicked && printf '%s' \"\$1\" | grep -q /data" _ "$out"
set +e
out=$("${RUN[@]}" --rm --network=none -e COINCAST__SERVE__MAX_BODY_BYTES=lots "$IMAGE" status 2>&1)
rc=$?
set -e
check "a bad COINCAST__ variable: exit 2 naming the key" \
  bash -c "[ $rc = 2 ] && printf '%s' \"\$1\" | grep -q serve.max_body_bytes" _ "$out"
printf 'this is [not toml\n' >"$WORK/bad.toml"
set +e
out=$("${RUN[@]}" --rm --network=none -v "$WORK/bad.toml:/etc/coincast.toml:ro" \
  -e COINCAST_CONFIG=/etc/coincast.toml "$IMAGE" status 2>&1)
rc=$?
set -e
check "a config file that is not TOML: exit 2 naming the file" \
  bash -c "[ $rc = 2 ] && printf '%s' \"\$1\" | grep -q /etc/coincast.toml" _ "$out"
python3 -m http.server "$PORT" --bind 127.0.0.1 >/dev/null 2>&1 &
blocker=$!
sleep 1
set +e
out=$("${RUN[@]}" --rm --network=host -v "$VOL:/data" "$IMAGE" serve --bind "127.0.0.1:$PORT" 2>&1)
rc=$?
set -e
kill "$blocker"
check "a port in use: a clear error and exit 1" \
  bash -c "[ $rc = 1 ] && printf '%s' \"\$1\" | grep -q 'listening on 127.0.0.1:$PORT'" _ "$out"
"${RUN[@]}" -d --name "$PREFIX-offline" --network=none -v "$VOL:/data" \
  -e COINCAST__COINGECKO__MAX_RETRIES=0 -e COINCAST__PIPELINE__TASK_ATTEMPTS=1 "$IMAGE" >/dev/null
ok=""
for _ in $(seq 1 300); do
  if podman exec "$PREFIX-offline" coincast healthcheck >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.2
done
check "no network: it starts and serves what it has (healthcheck inside)" test -n "$ok"
sleep 3
podman stop -t 30 "$PREFIX-offline" >/dev/null
failure=$("$PYTHON" - "$mountpoint/coincast.duckdb" <<'PY'
import duckdb, sys
c = duckdb.connect(sys.argv[1], read_only=True)
print(c.sql("SELECT failure FROM pipeline_runs WHERE trigger = 'startup' ORDER BY run_id DESC LIMIT 1").fetchone()[0])
PY
)
check "no network: the start-up run is recorded as source_unavailable ($failure)" test "$failure" = source_unavailable

echo "::: podman kube play deploy/k8s: the writer and a replica from the image"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
check "deploy/k8s: the kustomization and its resources are what a cluster needs" \
  "$PYTHON" "$ROOT/deploy/k8s/check.py" check
WPORT=$((PORT + 1)) RPORT=$((PORT + 2))
"$PYTHON" "$ROOT/deploy/k8s/check.py" play "$WORK/play.yaml" --image "localhost/${IMAGE#localhost/}" \
  --writer-port "$WPORT" --replica-port "$RPORT" --data-claim "$VOL" --publication-claim "$PREFIX-publication"
# kube play has no --runtime or --ulimit: the same choices through containers.conf.
printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n[engine]\nruntime = "runc"\n' \
  >"$WORK/containers.conf"
t0=$(date +%s%N)
if CONTAINERS_CONF=$WORK/containers.conf podman kube play "$WORK/play.yaml" >"$WORK/play.log" 2>&1; then
  ok=""
  for _ in $(seq 1 1200); do
    if curl -fsS --max-time 2 "http://127.0.0.1:$RPORT/ready" >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.1
  done
  check "kube play: the replica is ready on the writer's publication" test -n "$ok"
  figures+=("kube play to a ready replica: $(since "$t0") s")
  version() {
    curl -fsS -H 'content-type: application/json' -d '{"coin_id": "bitcoin", "hours_ahead": 1}' \
      "http://127.0.0.1:$1/predict" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["model_version"])'
  }
  writer_version=$(version "$WPORT" || echo none)
  check "kube play: the replica answers POST /predict with the writer's model ($writer_version)" \
    test "$(version "$RPORT" || echo none)" = "$writer_version"
  check "kube play: a promotion on the replica is 409" \
    test "$(curl -sS -o /dev/null -w '%{http_code}' -X POST -H 'authorization: Bearer kube-play' \
      -H 'content-type: application/json' -d '{}' "http://127.0.0.1:$RPORT/api/models/rollback")" = 409
  CONTAINERS_CONF=$WORK/containers.conf podman kube down "$WORK/play.yaml" >/dev/null 2>&1 || true
else
  echo "FAIL  podman kube play"; tail -20 "$WORK/play.log"; failures=$((failures + 1))
fi

echo "::: figures"
printf '  %s\n' "${figures[@]}"
if [ "$failures" -gt 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all container checks passed"
