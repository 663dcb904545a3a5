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
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${MODE:-monolithic}
export HOST=${HOST:-127.0.0.1}
export REST_PORT=${PORT:-8000} GRPC_PORT=${GRPC_PORT:-50051}
export SERVICE_PORT=${SERVICE_PORT:-50052} REPOSITORY_PORT=${REPOSITORY_PORT:-50053}
export ADMIN_PORT=${ADMIN_PORT:-8001}
replicas=${SERVICE_REPLICAS:-1}
procfile="procfiles/$MODE.Procfile"
[ -f "$procfile" ] || { echo "scripts/run.sh: no mode $MODE (monolithic or layered)" >&2; exit 2; }
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
esac
exec .venv/bin/honcho start -f "$procfile" -d .
