# coincast in one container: the binary, libduckdb and libtorch beside it, the DuckDB file on a
# volume. Two images from this file:
#   docker build -t coincast:cpu .                              (the default: libtorch for CPUs)
#   docker build --build-arg TORCH=cuda -t coincast:cuda .      (libtorch with CUDA, for hosts with
#                                                                the NVIDIA container toolkit)
#   docker run -d -p 8000:8000 -v coincast-data:/data coincast:cpu
#   docker run --rm -v coincast-data:/data -v "$PWD/recorded:/seed:ro" coincast:cpu replay /seed
# The entrypoint is the binary; the default command is the appliance (the HTTP API on 0.0.0.0:8000
# and the scheduled pipeline). `make image` builds the same runtime stage from `make build`'s
# output instead of the `build` stage (podman --build-context build=...); see README.md.

FROM rust:1-bookworm AS build
# Debian's stable packages are not version-pinned: bookworm's security updates should apply.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends npm python3-pip \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV COINCAST_CACHE=/cache
# TORCH=cuda builds against libtorch_cuda for GPU hosts.
ARG TORCH=cpu
RUN DUCKDB_LIB_DIR="$(scripts/fetch-duckdb.sh /cache)" \
    LIBTORCH="$(scripts/fetch-libtorch.sh "$TORCH" /cache)" \
    cargo build --release --locked --bin coincast \
 && mkdir -p /out/lib \
 && cp target/release/coincast /out/ \
 && cp /cache/duckdb-1.5.5/package/libduckdb.so /out/lib/ \
 && cp -a /cache/duckdb-1.5.5/package/extensions /out/lib/duckdb-extensions \
 && cp -a /cache/libtorch-2.13.0-"$TORCH"/lib/. /out/lib/

FROM debian:bookworm-slim
# ca-certificates is installed unless the base has it (the local base made by
# scripts/container-base.sh does, and builds offline); a numeric, non-root user owns /data and
# /publication (where a shared volume holds the serving publication for replicas; an empty
# volume mounted there takes this ownership).
# hadolint ignore=DL3008
RUN if ! dpkg-query -W ca-certificates >/dev/null 2>&1; then \
      apt-get update && apt-get install -y --no-install-recommends ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && useradd --uid 10001 --gid 0 --home-dir /data --no-create-home coincast \
 && mkdir -p /data /publication \
 && chown 10001:0 /data /publication \
 && chmod 0770 /data /publication
# The binary's rpath ends in $ORIGIN/lib, so libduckdb and libtorch are found beside it.
COPY --from=build /out/coincast /opt/coincast/coincast
COPY --from=build /out/lib /opt/coincast/lib
# Config: COINCAST__SECTION__KEY variables, or a file mounted read-only and named with
# COINCAST_CONFIG (e.g. -v ./coincast.toml:/etc/coincast.toml:ro -e COINCAST_CONFIG=/etc/coincast.toml).
ENV PATH=/opt/coincast:$PATH \
    COINCAST__DATA_DIR=/data \
    COINCAST__SERVE__BIND=0.0.0.0:8000
USER 10001
WORKDIR /data
VOLUME /data
EXPOSE 8000
# `coincast healthcheck` finds the server through /data/serve.url (any --bind) and needs no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 CMD ["coincast", "healthcheck"]
ENTRYPOINT ["coincast"]
CMD ["serve", "--bind", "0.0.0.0:8000"]
