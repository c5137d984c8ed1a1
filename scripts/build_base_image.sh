#!/usr/bin/env bash
# The Dockerfile's PYTHON_IMAGE without a container registry: a minimal Debian bookworm (Python
# 3.11, its venv module, useradd) made with debootstrap from Debian's apt repository and imported
# into podman as $BASE_IMAGE (default localhost/python-base:3.11-bookworm).
#
# It also carries this host's extra certificate authorities (/usr/local/share/ca-certificates) and
# points pip at the system bundle: where HTTPS to PyPI passes through an intercepting proxy, pip in
# `podman build` then reaches PyPI the way pip on the host does. Run as root; about 3 minutes.
set -euo pipefail
BASE_IMAGE=${BASE_IMAGE:-localhost/python-base:3.11-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

rootfs=$(mktemp -d /var/tmp/python-base.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 || {
  tail -30 "$rootfs.log" >&2
  echo "debootstrap failed (log above)" >&2
  exit 1
}
rm -f "$rootfs.log"

if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  chroot "$rootfs" update-ca-certificates >/dev/null
fi
# pip's own certificate bundle lacks them; the system one has them.
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/etc/pip.conf"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

tar -C "$rootfs" -c . | podman import --change 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
podman run --rm "$BASE_IMAGE" python3 -c 'import sys, venv; assert sys.version_info[:2] == (3, 11)'
echo "base image $BASE_IMAGE: $(podman run --rm "$BASE_IMAGE" python3 --version)"
