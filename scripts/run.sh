#!/usr/bin/env bash
# Run a deployment mode in the foreground with honcho, from its Procfile
# (procfiles/<mode>.Procfile). Ctrl-C or SIGTERM stops every process; if one
# dies, honcho stops the others.
#   MODE=monolithic (default)  REST on HOST:PORT, gRPC on HOST:GRPC_PORT
#   MODE=layered               the same public ports at the controller tier, plus
#                              the service tier on SERVICE_PORT (50052), the
#                              repository tier on REPOSITORY_PORT (50053) and
#                              the admin on ADMIN_PORT (8001), all on 127.0.0.1
#   SERVICE_REPLICAS=N         layered: N service-tier replicas on SERVICE_PORT,
#                              SERVICE_PORT+10, ... balanced per call by the controller
#   MODE=microservices         the same public ports at the gateway (nginx), in
#                              front of the users service (REST and admin on
#                              USERS_PORT 8001, gRPC USERS_GRPC_PORT 50061,
#                              internal USERS_INTERNAL_PORT 50052) and the auth
#                              service (AUTH_PORT 8002, AUTH_GRPC_PORT 50062,
#                              AUTH_INTERNAL_PORT 50053), all on 127.0.0.1
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${MODE:-monolithic}
export HOST=${HOST:-127.0.0.1}
export REST_PORT=${PORT:-8000} GRPC_PORT=${GRPC_PORT:-50051}
export SERVICE_PORT=${SERVICE_PORT:-50052} REPOSITORY_PORT=${REPOSITORY_PORT:-50053}
export ADMIN_PORT=${ADMIN_PORT:-8001}
export USERS_PORT=${USERS_PORT:-8001} AUTH_PORT=${AUTH_PORT:-8002}
export USERS_GRPC_PORT=${USERS_GRPC_PORT:-50061} AUTH_GRPC_PORT=${AUTH_GRPC_PORT:-50062}
export USERS_INTERNAL_PORT=${USERS_INTERNAL_PORT:-50052} AUTH_INTERNAL_PORT=${AUTH_INTERNAL_PORT:-50053}
# As in the image (docker/Dockerfile): Argon2's 19 MiB blocks in huge pages.
export GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}
replicas=${SERVICE_REPLICAS:-1}
procfile="procfiles/$MODE.Procfile"
[ -f "$procfile" ] || { echo "scripts/run.sh: no mode $MODE (monolithic, layered or microservices)" >&2; exit 2; }
[[ "$replicas" =~ ^[1-9][0-9]*$ ]] || { echo "scripts/run.sh: SERVICE_REPLICAS must be a number >= 1" >&2; exit 2; }

case "$MODE" in
  monolithic)
    .venv/bin/python manage.py migrate --noinput
    echo "monolithic: REST http://$HOST:$REST_PORT (docs /api/docs, admin /admin/)  gRPC $HOST:$GRPC_PORT"
    ;;
  layered)
    scripts/tier.sh repository migrate --noinput
    mkdir -p .run
    addrs=()
    { cat "$procfile"
      for i in $(seq 1 "$replicas"); do
        port=$((SERVICE_PORT + 10 * (i - 1)))
        addrs+=("127.0.0.1:$port")
        echo "service$i: scripts/tier.sh service tierserver 127.0.0.1:$port"
      done
    } >.run/layered.Procfile
    ARCANA_SERVICE_ADDR=$(IFS=,; echo "${addrs[*]}")
    export ARCANA_SERVICE_ADDR
    procfile=.run/layered.Procfile
    echo "layered: REST http://$HOST:$REST_PORT (docs /api/docs)  gRPC $HOST:$GRPC_PORT  [controller tier]"
    echo "         service tier $ARCANA_SERVICE_ADDR  repository tier 127.0.0.1:$REPOSITORY_PORT"
    echo "         admin http://127.0.0.1:$ADMIN_PORT/admin/  [repository tier]"
    ;;
  microservices)
    scripts/service.sh users migrate --noinput
    scripts/service.sh auth migrate --noinput
    # The gateway's upstreams (scripts/gateway.sh renders them into nginx's config).
    export REST_PORT GRPC_PORT
    export USERS_REST_UPSTREAM=127.0.0.1:$USERS_PORT AUTH_REST_UPSTREAM=127.0.0.1:$AUTH_PORT
    export USERS_GRPC_UPSTREAM=127.0.0.1:$USERS_GRPC_PORT AUTH_GRPC_UPSTREAM=127.0.0.1:$AUTH_GRPC_PORT
    echo "microservices: REST http://$HOST:$REST_PORT (docs /api/docs)  gRPC $HOST:$GRPC_PORT  [gateway]"
    echo "               users service 127.0.0.1:$USERS_PORT (admin /admin/), gRPC :$USERS_GRPC_PORT, internal :$USERS_INTERNAL_PORT"
    echo "               auth service 127.0.0.1:$AUTH_PORT, gRPC :$AUTH_GRPC_PORT, internal :$AUTH_INTERNAL_PORT"
    ;;
esac
exec .venv/bin/honcho start -f "$procfile" -d .
