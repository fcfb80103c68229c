#!/usr/bin/env bash
# Fetch the official prebuilt libduckdb.so (DuckDB 1.5.6, with parquet/json/icu built in) once into
# a cache outside the clone. It comes from npm because that registry is reachable where crates'
# own download hosts are not; the crate `duckdb = "=1.10506.1"` is the matching C API.
# usage: scripts/fetch-duckdb.sh [CACHE_DIR]   prints the directory that holds libduckdb.so
set -euo pipefail
VERSION=1.5.6
PKG="@duckdb/node-bindings-linux-x64@${VERSION}-r.1"
CACHE=${1:-${COINCAST_CACHE:-$HOME/.cache/coincast}}/duckdb-$VERSION
if [ ! -s "$CACHE/package/libduckdb.so" ]; then
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/.dl.XXXXXX"); trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$PKG" >/dev/null && tar xzf ./*.tgz)
  [ -s "$tmp/package/libduckdb.so" ] || { echo "fetch-duckdb: $PKG has no libduckdb.so" >&2; exit 1; }
  rm -rf "$CACHE/package" && mv "$tmp/package" "$CACHE/package"
fi
echo "$CACHE/package"
