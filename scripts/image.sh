#!/usr/bin/env bash
# `make image`: build the production image from docker/Dockerfile with rootful
# podman, on a machine that reaches no container registry and PyPI only
# through a TLS-inspecting proxy (the project's CI machines; README
# "Build the image with podman"). Three workarounds, each for one reason:
#   1. CONTAINERS_CONF=docker/podman/containers.conf: podman's default ulimits
#      exceed the sandbox's hard limits ("error setting rlimit type 7").
#   2. No registry: the Dockerfile's FROM python:3.11-slim-bookworm is a local
#      stand-in (docker/podman/python-standin.Containerfile) built on Debian
#      bookworm debootstrapped from the machine's Debian mirror and imported;
#      every build runs with --pull=never. The debootstrapped tree is cached
#      in .cache/image/ (git- and docker-ignored), so later builds skip it.
#      When the real python:3.11-slim-bookworm is already in podman's store
#      (pulled where a registry is reachable), it is used instead.
#   3. pip through the proxy: the host's CA bundle goes in as the build secret
#      `ca` (the Dockerfile's optional extra CA), never into a layer.
# `scripts/image.sh --base` makes (or reuses) the debootstrapped base only.
# Environment: IMAGE (arcana:latest), BUILD_CA (the host's CA bundle; empty:
# no secret), DEBIAN_MIRROR (the first deb.debian.org-style URI of apt's
# sources), REBUILD_BASE=1 (debootstrap and import again).
# Later runs reuse the imported base (labelled with its REVISION) or, when it
# is gone from podman's store, the cached tree.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-arcana:latest}
BUILD_CA=${BUILD_CA-/etc/ssl/certs/ca-certificates.crt}
SUITE=bookworm
BASE=localhost/arcana-bookworm-minbase:latest
FROM_IMAGE=python:3.11-slim-bookworm
STANDIN=localhost/$FROM_IMAGE
CACHE=.cache/image
ROOTFS=$CACHE/$SUITE-minbase
export CONTAINERS_CONF=$PWD/docker/podman/containers.conf

[ "$(id -u)" -eq 0 ] || { echo "image: rootful podman: run as root" >&2; exit 2; }
command -v podman >/dev/null && command -v debootstrap >/dev/null \
  || { echo "image: podman and debootstrap are missing (scripts/bootstrap.sh --containers)" >&2; exit 2; }

elapsed() { echo "$(($(date +%s) - $1))s"; }

# The Debian mirror apt already uses (the machine may reach no other).
mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local uri
  uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
          /etc/apt/sources.list.d/*.sources \
        | grep -v security | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 || true)
  uri=${uri%% *}
  echo "${uri%/}" | grep . || echo http://deb.debian.org/debian
}

# The debootstrapped tree, made slim like the official -slim images; bump
# REVISION when this preparation changes (the cache is then made again).
REVISION=2
prepare_rootfs() {
  local dir=$1 url=$2
  # Security and point-release updates, as the official images carry.
  cat >"$dir/etc/apt/sources.list" <<EOF
deb $url $SUITE main
deb $url $SUITE-updates main
deb ${url%/debian*}/debian-security $SUITE-security main
EOF
  # No daemon starts inside a build; apt keeps no caches and no translations
  # in layers; dpkg installs no documentation but the copyrights.
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod 0755 "$dir/usr/sbin/policy-rc.d"
  cat >"$dir/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
EOF
  cat >"$dir/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
  find "$dir/usr/share/doc" -type f ! -name copyright -delete
  find "$dir/usr/share/doc" -type l -delete
  rm -rf "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/lintian/*
  find "$dir/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin "$dir"/var/lib/apt/lists/*
}

label=org.arcana.base-revision
if [ "${REBUILD_BASE:-0}" = 1 ]; then
  rm -rf "$ROOTFS"
  podman rmi --force "$STANDIN" "$BASE" >/dev/null 2>&1 || true
fi
# The imported base carries its revision: current, it is reused as it is
# (another checkout's, too); else it is imported again from the cached tree,
# made first when missing or of another revision.
ensure_base() {
  local have url start
  have=$(podman image inspect --format "{{index .Labels \"$label\"}}" "$BASE" 2>/dev/null || true)
  if [ "$have" != "$REVISION" ]; then
    if [ "$(cat "$ROOTFS/.complete" 2>/dev/null)" != "$REVISION" ]; then
      url=$(mirror)
      echo "image: debootstrap $SUITE (minbase) from $url into $ROOTFS"
      start=$(date +%s)
      rm -rf "$ROOTFS.tmp" && mkdir -p "$CACHE"
      debootstrap --variant=minbase "$SUITE" "$ROOTFS.tmp" "$url" >"$CACHE/debootstrap.log" 2>&1 \
        || { tail -n 20 "$CACHE/debootstrap.log" >&2; exit 1; }
      prepare_rootfs "$ROOTFS.tmp" "$url"
      rm -rf "$ROOTFS" && mv "$ROOTFS.tmp" "$ROOTFS" && echo "$REVISION" >"$ROOTFS/.complete"
      echo "image: debootstrap took $(elapsed "$start")"
    fi
    echo "image: importing $ROOTFS as $BASE"
    start=$(date +%s)
    tar --exclude=./.complete -C "$ROOTFS" -c . \
      | podman import --quiet --change "LABEL $label=$REVISION" - "$BASE" >/dev/null
    echo "image: import took $(elapsed "$start")"
  fi
}

if [ "${1:-}" = --base ]; then  # the base alone (scripts/standins.sh builds on it)
  ensure_base
  exit 0
fi
if podman image exists "docker.io/library/$FROM_IMAGE"; then
  echo "image: using the pulled docker.io/library/$FROM_IMAGE"
else
  ensure_base
  # Cached by podman when nothing changed (a second or so).
  echo "image: building the stand-in $STANDIN"
  start=$(date +%s)
  podman build --quiet --pull=never --network host -t "$STANDIN" \
    -f docker/podman/python-standin.Containerfile docker/podman >/dev/null
  echo "image: stand-in took $(elapsed "$start")"
fi

secret=()
if [ -n "$BUILD_CA" ]; then
  [ -r "$BUILD_CA" ] || { echo "image: BUILD_CA=$BUILD_CA is not a readable file" >&2; exit 2; }
  secret=(--secret "id=ca,src=$BUILD_CA")
fi
echo "image: building $IMAGE from docker/Dockerfile"
start=$(date +%s)
# Docker's image format: the OCI format has no HEALTHCHECK (podman drops it
# with a warning), and the image's role-aware check is part of the image.
podman build --pull=never --network host --format docker "${secret[@]}" \
  -t "$IMAGE" -f docker/Dockerfile .
echo "image: build took $(elapsed "$start")"
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "image: $IMAGE is $((size / 1000000)) MB"
