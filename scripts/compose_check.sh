#!/usr/bin/env bash
# Validate every compose file offline: `docker-compose config -q` parses and
# interpolates a file and checks it against the Compose schema without a
# Docker engine. Installs Debian's docker-compose package when it is missing.
#   scripts/compose_check.sh              every docker/compose.*.yml (each with
#                                         its docker/podman/ override, if any)
#   scripts/compose_check.sh FILE...      just these
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v docker-compose >/dev/null 2>&1; then
  echo "compose_check: installing Debian's docker-compose"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker-compose >/dev/null
fi

files=("$@")
[ ${#files[@]} -eq 0 ] && files=(docker/compose.*.yml)
for file in "${files[@]}"; do
  docker-compose -f "$file" config -q
  echo "compose_check: $file ok"
  # With its podman override (make containers), when it has one.
  override=$(dirname "$file")/podman/$(basename "$file")
  if [ -f "$override" ]; then
    docker-compose -f "$file" -f "$override" config -q
    echo "compose_check: $file + $override ok"
  fi
done
