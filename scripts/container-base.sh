#!/usr/bin/env bash
# The local base image `localhost/debian:bookworm-slim` for podman builds on machines that reach
# no image registry: a minimal Debian root file system from debootstrap (Debian's packages only,
# with ca-certificates), imported once. The root file system is cached as a tarball under
# $1 (default ~/.cache/coincast/container), so a wiped podman store imports it again in seconds.
set -euo pipefail
CACHE=${1:-$HOME/.cache/coincast/container}
IMAGE=localhost/debian:bookworm-slim
if podman image exists "$IMAGE"; then
  exit 0
fi
mkdir -p "$CACHE"
TARBALL=$CACHE/bookworm-minbase.tar
if [ ! -s "$TARBALL" ]; then
  ROOTFS=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  trap 'rm -rf "$ROOTFS"' EXIT
  echo "making $IMAGE with debootstrap (about 2 minutes, once)" >&2
  debootstrap --variant=minbase --include=ca-certificates bookworm "$ROOTFS" \
    http://deb.debian.org/debian >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
  tar -C "$ROOTFS" -cf "$TARBALL.partial" .
  mv "$TARBALL.partial" "$TARBALL"
fi
podman import "$TARBALL" "$IMAGE" >/dev/null
echo "imported $IMAGE" >&2
