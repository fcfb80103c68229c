#!/usr/bin/env bash
# `make image`: the CPU image, built by podman from what `make build` produced, through the same
# Dockerfile's runtime stage (its `build` stage is replaced by a build context holding the binary
# and the libraries, so no Rust image is pulled). Nothing is downloaded: the base image is made
# locally (scripts/container-base.sh) with ca-certificates in it. (Chroot isolation, which these
# hosts need for RUN steps, cannot take --network=none.)
# Usage: scripts/image.sh BINARY DUCKDB_LIB_DIR LIBTORCH CACHE [TAG]
set -euo pipefail
BIN=$1 DUCKDB=$2 TORCH_DIR=$3 CACHE=$4 TAG=${5:-coincast:cpu}
cd "$(dirname "$0")/.."
scripts/container-base.sh "$CACHE/container"
CTX=$CACHE/container/build-context
rm -rf "$CTX"
mkdir -p "$CTX/out/lib"
# Hard links when the cache shares a file system with the build outputs (no 500 MB copy).
link() { cp -al "$@" 2>/dev/null || cp -a "$@"; }
link "$BIN" "$CTX/out/coincast"
link "$DUCKDB/libduckdb.so" "$CTX/out/lib/"
link "$DUCKDB/extensions" "$CTX/out/lib/duckdb-extensions"
link "$TORCH_DIR/lib/." "$CTX/out/lib/"
started=$SECONDS
podman build --isolation=chroot --format docker --skip-unused-stages \
  --build-context build="$CTX" -t "$TAG" -f Dockerfile . >&2
echo "built $TAG in $((SECONDS - started)) s: $(podman image inspect "$TAG" --format '{{.Size}}') bytes" >&2
