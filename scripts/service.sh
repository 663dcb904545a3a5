#!/usr/bin/env bash
# Run a manage.py command as one service of microservices mode on this machine:
#   scripts/service.sh SERVICE COMMAND [ARGS...]     SERVICE: users | auth
# Each service gets its own database (USERS_DATABASE_URL / AUTH_DATABASE_URL;
# SQLite db-users.sqlite3 / db-auth.sqlite3 beside manage.py when unset), the
# other service's internal address (USERS_INTERNAL_PORT 50052, AUTH_INTERNAL_PORT
# 50053 on 127.0.0.1; or ARCANA_USERS_ADDR / ARCANA_AUTH_ADDR), and its JWT key:
# the private key for auth, which mints tokens, the public key for users.
# Both run behind the gateway (scripts/gateway.sh): one trusted proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
service=${1:?usage: scripts/service.sh users|auth COMMAND [ARGS...]}
shift

. scripts/dev_keys.sh  # sets $keys: the development key pair (made once per checkout)

export ARCANA_MODE=microservices ARCANA_SERVICE="$service"
export ARCANA_INTERNAL_INSECURE=${ARCANA_INTERNAL_INSECURE:-true}  # loopback, development only
export ARCANA_USERS_ADDR=${ARCANA_USERS_ADDR:-127.0.0.1:${USERS_INTERNAL_PORT:-50052}}
export ARCANA_AUTH_ADDR=${ARCANA_AUTH_ADDR:-127.0.0.1:${AUTH_INTERNAL_PORT:-50053}}
export NUM_PROXIES=${NUM_PROXIES:-1} GRPC_NUM_PROXIES=${GRPC_NUM_PROXIES:-1}
unset JWT_SIGNING_KEY JWT_PRIVATE_KEY JWT_PUBLIC_KEY DATABASE_URL ARCANA_TIER
case "$service" in
  users)
    export DATABASE_URL=${USERS_DATABASE_URL:-sqlite:///$PWD/db-users.sqlite3}
    export JWT_PUBLIC_KEY="$PWD/$keys/jwt-ed25519.pub.pem"
    ;;
  auth)
    export DATABASE_URL=${AUTH_DATABASE_URL:-sqlite:///$PWD/db-auth.sqlite3}
    export JWT_PRIVATE_KEY="$PWD/$keys/jwt-ed25519.pem"
    ;;
  *) echo "scripts/service.sh: unknown service $service (users or auth)" >&2; exit 2 ;;
esac
exec "$PY" manage.py "$@"
