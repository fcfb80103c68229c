#!/usr/bin/env bash
# Installs the Debian packages the build and tests need, only those missing (fresh machine: all).
# No service is started: the prometheus package is here for promtool and the scrape test,
# chromium for the dashboards' browser test.
# Needs root (or sudo). Rust itself is expected on the machine (rustup); npm fetches libduckdb.
set -euo pipefail
need=()
command -v cc >/dev/null      || need+=(build-essential)
command -v npm >/dev/null     || need+=(npm)
command -v curl >/dev/null    || need+=(curl)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
command -v promtool >/dev/null || need+=(prometheus)      # promtool: the metrics lint in the tests
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v chromium >/dev/null || need+=(chromium)        # the dashboards' browser test (headless)
command -v psql >/dev/null     || need+=(postgresql-client) # the Postgres-wire endpoint's test
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql) # the lake's catalog test (started by the test)
command -v haproxy >/dev/null  || need+=(haproxy)          # the replicas' load-balancer test (started by the test)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "installing: ${need[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
