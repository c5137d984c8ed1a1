#!/usr/bin/env bash
# What `make image-test` needs on a Debian 12 host, as root: podman with runc, debootstrap for the
# base image, and Debian's docker-compose (run against podman's Docker-compatible socket).
#
# /etc/containers/containers.conf: runc, because crun fails on this kind of machine ("cgroups in
# hybrid mode not supported"); and default ulimits below the host's, because a container may only
# lower its resource limits here (raising or keeping them: "setrlimit RLIMIT_NOFILE: Operation not
# permitted"). docker-compose.yml sets the api's own nofile (4096); these are for the rest.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "run as root" >&2
  exit 1
fi
if ! command -v podman >/dev/null || ! command -v runc >/dev/null \
  || ! command -v debootstrap >/dev/null || ! command -v docker-compose >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap docker-compose >/dev/null
fi
mkdir -p /etc/containers
if [ ! -e /etc/containers/containers.conf ]; then
  cat >/etc/containers/containers.conf <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
EOF
fi
podman --version
