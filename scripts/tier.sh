#!/usr/bin/env bash
# Run a manage.py command as one tier of layered mode on this machine:
#   scripts/tier.sh TIER COMMAND [ARGS...]     TIER: controller | service | repository
# Gives the process only what its tier may hold: DATABASE_URL for the
# repository tier alone (SQLite db.sqlite3 when unset), the token-minting key
# for the service tier alone, the public key at the controller. Development
# keys are made once per checkout in .dev-keys/ (git-ignored). Peer addresses
# default to this machine's ports (SERVICE_PORT, REPOSITORY_PORT); set
# ARCANA_SERVICE_ADDR / ARCANA_REPOSITORY_ADDR to override (replicas).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
tier=${1:?usage: scripts/tier.sh controller|service|repository COMMAND [ARGS...]}
shift

. scripts/dev_keys.sh  # sets $keys: the development key pair (made once per checkout)

export ARCANA_MODE=layered ARCANA_TIER="$tier"
export ARCANA_INTERNAL_INSECURE=${ARCANA_INTERNAL_INSECURE:-true}  # loopback, development only
export ARCANA_SERVICE_ADDR=${ARCANA_SERVICE_ADDR:-127.0.0.1:${SERVICE_PORT:-50052}}
export ARCANA_REPOSITORY_ADDR=${ARCANA_REPOSITORY_ADDR:-127.0.0.1:${REPOSITORY_PORT:-50053}}
unset JWT_SIGNING_KEY JWT_PRIVATE_KEY JWT_PUBLIC_KEY
case "$tier" in
  repository) ;;
  service) unset DATABASE_URL; export JWT_PRIVATE_KEY="$PWD/$keys/jwt-ed25519.pem" ;;
  controller) unset DATABASE_URL; export JWT_PUBLIC_KEY="$PWD/$keys/jwt-ed25519.pub.pem" ;;
  *) echo "scripts/tier.sh: unknown tier $tier (controller, service or repository)" >&2; exit 2 ;;
esac
exec "$PY" manage.py "$@"
