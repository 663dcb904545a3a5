#!/usr/bin/env bash
# Local stand-ins for the service images of docker/compose.*.yml -- mysql:8.4,
# redis:7, nginx:1.27 -- where no container registry is reachable (make
# containers MODE=layered|microservices runs them). Each is built from
# docker/podman/standins.Containerfile (its target of the same name) on the
# debootstrapped Debian base of scripts/image.sh, and tagged with the name the
# compose files use (podman stores it as localhost/NAME, which a short name
# finds), so the compose files run unchanged with --pull=never.
# A real image of that name already in podman's store (pulled where a
# registry is reachable) is used instead and left alone.
# Cached by podman: a second or so when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

export CONTAINERS_CONF=$PWD/docker/podman/containers.conf
BASE=localhost/arcana-bookworm-minbase:latest
STANDINS=(mysql=mysql:8.4 redis=redis:7 nginx=nginx:1.27)

[ "$(id -u)" -eq 0 ] || { echo "standins: rootful podman: run as root" >&2; exit 2; }
command -v podman >/dev/null \
  || { echo "standins: podman is missing (scripts/bootstrap.sh --containers)" >&2; exit 2; }

podman image exists "$BASE" || scripts/image.sh --base
for pair in "${STANDINS[@]}"; do
  target=${pair%%=*} name=${pair#*=}
  if podman image exists "docker.io/library/$name"; then
    echo "standins: using the pulled docker.io/library/$name"
    continue
  fi
  start=$(date +%s)
  podman build --quiet --pull=never --network host --target "$target" \
    --label "org.arcana.standin=$target" -t "localhost/$name" \
    -f docker/podman/standins.Containerfile docker/podman >/dev/null
  size=$(podman image inspect --format '{{.Size}}' "localhost/$name")
  echo "standins: localhost/$name ($target) $((size / 1000000)) MB, took $(($(date +%s) - start))s"
done
