# coincast in one container: the binary, libduckdb next to it, the DuckDB file on a volume.
#   docker build -t coincast .
#   docker run --rm -v coincast-data:/data coincast replay /replay      (with -v <dir>:/replay:ro)
#   docker run --rm -p 8000:8000 -v coincast-data:/data -e COINCAST__COINGECKO__API_KEY=... coincast
# The default command is the appliance: the HTTP API on 0.0.0.0:8000 and the scheduled pipeline.

FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV COINCAST_CACHE=/cache
RUN DUCKDB_LIB_DIR="$(scripts/fetch-duckdb.sh /cache)" \
    cargo build --release --locked --bin coincast \
 && mkdir -p /out/lib \
 && cp target/release/coincast /out/ \
 && cp /cache/duckdb-1.5.6/package/libduckdb.so /out/lib/

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /data coincast \
 && mkdir -p /data && chown coincast /data
# The binary's rpath includes $ORIGIN/lib, so libduckdb.so is found beside it.
COPY --from=build /out/coincast /opt/coincast/coincast
COPY --from=build /out/lib /opt/coincast/lib
ENV PATH=/opt/coincast:$PATH \
    COINCAST__DATA_DIR=/data
USER coincast
VOLUME /data
EXPOSE 8000
ENTRYPOINT ["coincast"]
CMD ["serve", "--bind", "0.0.0.0:8000"]
