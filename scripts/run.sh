#!/usr/bin/env bash
# Serve REST (runserver) and gRPC (grpcrunserver) together in the foreground.
# Ctrl-C or SIGTERM stops both; if either dies, the other is stopped too.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
GRPC_PORT=${GRPC_PORT:-50051}

"$PY" manage.py grpcrunserver "$HOST:$GRPC_PORT" &
grpc_pid=$!
"$PY" manage.py runserver "$HOST:$PORT" &
rest_pid=$!

stop() {
  trap - INT TERM EXIT
  kill -TERM "$rest_pid" "$grpc_pid" 2>/dev/null || true
  wait "$rest_pid" "$grpc_pid" 2>/dev/null || true
}
trap stop INT TERM EXIT

echo "REST on http://$HOST:$PORT  (docs /api/docs, admin /admin/)  gRPC on $HOST:$GRPC_PORT"
# Return as soon as either server exits; the trap stops the other.
wait -n "$rest_pid" "$grpc_pid"
