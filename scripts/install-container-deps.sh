#!/usr/bin/env bash
# Installs what `make image` and `make test-image` need, only what is missing: podman with runc
# (crun fails on these hosts' hybrid cgroups), debootstrap for the local base image, curl.
set -euo pipefail
need=()
command -v podman >/dev/null      || need+=(podman buildah uidmap slirp4netns fuse-overlayfs)
command -v runc >/dev/null        || need+=(runc)
command -v catatonit >/dev/null   || need+=(catatonit)   # the pause process of `podman kube play`'s pods
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v curl >/dev/null        || need+=(curl)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "installing: ${need[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
