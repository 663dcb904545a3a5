#!/usr/bin/env bash
# The microservices gateway for a local run: nginx in the foreground, as the
# current user, with docker/nginx/arcana.conf.template rendered into a
# git-ignored directory (a Procfile line `gateway: scripts/gateway.sh` runs it
# under honcho; SIGTERM stops it).
#   USERS_REST_UPSTREAM AUTH_REST_UPSTREAM    host:port of each service's REST
#   USERS_GRPC_UPSTREAM AUTH_GRPC_UPSTREAM    host:port of each service's gRPC
#   REST_PORT (8000) GRPC_PORT (50051)        the public ports; on HOST when set
#   FORWARDED_PROTO ($scheme)                 see the template
#   GATEWAY_DIR (.run/nginx)                  the rendered config, pid, temp files
#   GATEWAY_WORKERS (2)                       nginx worker processes
# Installs Debian's nginx first when it is missing (scripts/bootstrap.sh
# --gateway), and checks the result with `nginx -t` before serving.
set -euo pipefail
cd "$(dirname "$0")/.."

find_nginx() { command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; }; }
nginx=$(find_nginx || true)
if [ -z "$nginx" ]; then
  scripts/bootstrap.sh --gateway >&2
  nginx=$(find_nginx) || { echo "gateway: nginx is still missing after scripts/bootstrap.sh --gateway" >&2; exit 1; }
fi

export REST_PORT=${REST_PORT:-8000} GRPC_PORT=${GRPC_PORT:-50051}
export FORWARDED_PROTO=${FORWARDED_PROTO:-\$scheme}  # a local gateway is the edge
if [ -n "${HOST:-}" ]; then
  [[ "$REST_PORT" =~ ^[0-9]+$ ]] && REST_PORT="$HOST:$REST_PORT"
  [[ "$GRPC_PORT" =~ ^[0-9]+$ ]] && GRPC_PORT="$HOST:$GRPC_PORT"
fi
run=${GATEWAY_DIR:-.run/nginx}
python=python3
[ -x .venv/bin/python ] && python=.venv/bin/python
conf=$("$python" scripts/gateway.py render "$run") || exit 2  # it has said why, in one line
prefix=$(cd "$run" && pwd)/

# -e stderr: nginx opens its built-in error log before reading any config.
if ! check=$("$nginx" -t -q -e stderr -p "$prefix" -c "$conf" 2>&1); then
  printf '%s\n' "$check" >&2
  echo "gateway: nginx -t refused $conf (the line above says why)" >&2
  exit 1
fi
echo "gateway: REST $REST_PORT, gRPC $GRPC_PORT -> users $USERS_REST_UPSTREAM / $USERS_GRPC_UPSTREAM, auth $AUTH_REST_UPSTREAM / $AUTH_GRPC_UPSTREAM" >&2
exec "$nginx" -e stderr -p "$prefix" -c "$conf"
