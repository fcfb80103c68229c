# coincast in one container: the binary, libduckdb and libtorch next to it, the DuckDB file on a volume.
#   docker build -t coincast .
#   docker run --rm -v coincast-data:/data coincast replay /replay      (with -v <dir>:/replay:ro)
#   docker run --rm -p 8000:8000 -v coincast-data:/data -e COINCAST__COINGECKO__API_KEY=... coincast
# The default command is the appliance: the HTTP API on 0.0.0.0:8000 and the scheduled pipeline.

FROM rust:1-bookworm AS build
# Debian's stable packages are not version-pinned: bookworm's security updates should apply.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends npm python3-pip \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV COINCAST_CACHE=/cache
# TORCH=cuda builds against libtorch_cuda for GPU hosts (run with the NVIDIA container runtime).
ARG TORCH=cpu
RUN DUCKDB_LIB_DIR="$(scripts/fetch-duckdb.sh /cache)" \
    LIBTORCH="$(scripts/fetch-libtorch.sh "$TORCH" /cache)" \
    cargo build --release --locked --bin coincast \
 && mkdir -p /out/lib \
 && cp target/release/coincast /out/ \
 && cp /cache/duckdb-1.5.6/package/libduckdb.so /out/lib/ \
 && cp -a /cache/libtorch-2.13.0-"$TORCH"/lib/. /out/lib/

FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /data coincast \
 && mkdir -p /data && chown coincast /data
# The binary's rpath includes $ORIGIN/lib, so libduckdb and libtorch are found beside it.
COPY --from=build /out/coincast /opt/coincast/coincast
COPY --from=build /out/lib /opt/coincast/lib
ENV PATH=/opt/coincast:$PATH \
    COINCAST__DATA_DIR=/data
USER 10001
VOLUME /data
EXPOSE 8000
ENTRYPOINT ["coincast"]
CMD ["serve", "--bind", "0.0.0.0:8000"]
