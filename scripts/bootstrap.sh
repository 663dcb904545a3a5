#!/usr/bin/env bash
# Prepare a fresh machine: the Debian packages mysqlclient needs to build (only
# when missing; with --dev also docker-compose and nginx; with --containers
# podman and debootstrap), a virtual environment in .venv, and the pinned
# dependencies.
# Idempotent and quick when everything is already in place.
#   scripts/bootstrap.sh            runtime dependencies
#   scripts/bootstrap.sh --gateway  runtime + nginx (microservices mode's gateway)
#   scripts/bootstrap.sh --dev      runtime + nginx + test and dev tools
#   scripts/bootstrap.sh --browser  also Debian's Chromium (the admin's browser test)
#   scripts/bootstrap.sh --containers  runtime + podman, podman-compose and debootstrap (make image, make containers)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
want_dev=0
want_gateway=0
want_browser=0
want_containers=0
for option in "$@"; do
  case "$option" in
    --dev) want_dev=1 want_gateway=1 ;;  # the gateway's tests run a real nginx
    --gateway) want_gateway=1 ;;
    --browser) want_dev=1 want_gateway=1 want_browser=1 ;;
    --containers) want_containers=1 ;;
    *) echo "bootstrap: unknown option $option (--dev, --gateway, --browser, --containers)" >&2; exit 2 ;;
  esac
done

need_apt=()
# Debian splits venv/ensurepip out of the interpreter package.
"$PYTHON" -c "import venv, ensurepip" >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
if ! pkg-config --exists mysqlclient 2>/dev/null && ! pkg-config --exists mariadb 2>/dev/null; then
  need_apt+=(default-libmysqlclient-dev)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  need_apt+=(build-essential)
fi
# Development: docker-compose validates the compose files offline (no engine
# needed; tests/test_compose.py, scripts/compose_check.sh).
if [ $want_dev -eq 1 ] && ! command -v docker-compose >/dev/null 2>&1; then
  need_apt+=(docker-compose)
fi
# Development: envsubst renders the gateway's template as the nginx image does
# (tests/test_gateway.py compares it with scripts/gateway.py).
if [ $want_dev -eq 1 ] && ! command -v envsubst >/dev/null 2>&1; then
  need_apt+=(gettext-base)
fi
# Development: Debian's Prometheus scrapes a live layered stack in
# tests/live/test_prometheus.py and in make observe (tests/support/prometheus.py).
# Like nginx, it is run by the project with a configuration of its own.
if [ $want_dev -eq 1 ] && ! command -v prometheus >/dev/null 2>&1 && [ ! -x /usr/bin/prometheus ]; then
  need_apt+=(prometheus)
fi
# The microservices gateway: Debian's nginx (scripts/gateway.sh). Not on PATH
# for every user (/usr/sbin), hence the explicit look. Debian starts a packaged
# service on install unless policy-rc.d forbids it (container images do);
# scripts/gateway.sh runs its own nginx and never that one.
if [ $want_gateway -eq 1 ] && ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  need_apt+=(nginx)
fi
# The admin's browser test (tests/browser): Debian's Chromium, which Playwright
# drives by path (never `playwright install`, which downloads its own).
if [ $want_browser -eq 1 ] && [ ! -x /usr/bin/chromium ]; then
  need_apt+=(chromium)
fi
# Containers (make image, scripts/image.sh): rootful podman builds and runs
# them; debootstrap makes the local base image where no registry is reachable.
# debootstrap lives in /usr/sbin, not on every user's PATH. podman-compose
# runs the compose files under podman (make containers MODE=layered|microservices).
if [ $want_containers -eq 1 ]; then
  command -v podman >/dev/null 2>&1 || need_apt+=(podman)
  command -v podman-compose >/dev/null 2>&1 || need_apt+=(podman-compose)
  if ! command -v debootstrap >/dev/null 2>&1 && [ ! -x /usr/sbin/debootstrap ]; then
    need_apt+=(debootstrap)
  fi
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating virtual environment in $VENV"
  "$PYTHON" -m venv "$VENV"
fi

# Reinstall only when a requirements file changed since the last install.
stamp="$VENV/.requirements.sha"
files=(requirements.txt)
[ $want_dev -eq 1 ] && files+=(requirements-dev.txt)
sum=$(cat "${files[@]}" | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || ! grep -qx "$sum" "$stamp"; then
  echo "bootstrap: installing Python dependencies (${files[*]})"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  args=()
  for f in "${files[@]}"; do args+=(-r "$f"); done
  "$VENV/bin/python" -m pip install -q "${args[@]}"
  echo "$sum" >>"$stamp"
fi
