#!/bin/sh
# The image's entry point: docker/entrypoint.sh ROLE [ARGS...]
#   rest     python -m arcana.wsgi_server: granian serving arcana.wsgi (port 8000;
#            REST_* variables, see arcana/wsgi_server.py)
#   grpc     manage.py grpcrunserver 0.0.0.0:50051 --workers ${GRPC_WORKERS:-2}
#   tier     manage.py tierserver 0.0.0.0:${TIER_PORT}                (required)
#   migrate  manage.py migrate --noinput, then exits
#   worker   manage.py db_worker: sends the queued mail (users/tasks.py); runs
#            where the data is (monolithic, the layered repository tier, the
#            users service)
#   prune    manage.py prune_db_task_results --min-age-days ${TASK_RESULTS_KEEP_DAYS:-14}:
#            deletes the queue's finished tasks older than that many days (a
#            whole number, 0 or more), then exits; run it daily beside the
#            worker, with the worker's settings (Kubernetes: CronJob
#            prune-tasks; compose: docker-compose run --rm worker prune)
#   recover  manage.py recover_stuck_tasks: queues again the tasks a dead worker
#            left running over ${TASK_STUCK_AFTER_SECONDS:-900} s, fails those
#            claimed ${TASK_STUCK_MAX_RUNS:-3} times ("worker lost"; both whole
#            numbers, 1 or more), then exits; run it every 5 minutes beside the
#            worker, with its settings (Kubernetes: CronJob recover-tasks;
#            compose: docker-compose run --rm worker recover)
#   manage   manage.py ARGS: a one-off command with the container's settings
#            and secrets, e.g. in a running container (exec skips the entry
#            point, so the *_FILE secrets would not be read):
#              docker-compose exec admin /app/docker/entrypoint.sh manage createsuperuser
# ARGS are appended to the command. The mode, tier and service come from the
# environment (ARCANA_MODE, ARCANA_TIER, ARCANA_SERVICE), never from the role.
#
# Secrets as files: for DJANGO_SECRET_KEY, JWT_SIGNING_KEY, DATABASE_URL,
# REDIS_URL, EMAIL_URL and METRICS_TOKEN, NAME_FILE=/run/secrets/x sets NAME to the
# file's content (compose and Kubernetes mount secrets as files). JWT_PRIVATE_KEY, JWT_PUBLIC_KEY and
# ARCANA_INTERNAL_TLS_* take a file's path themselves.
#
# The server replaces this shell (exec), so it is PID 1 and gets SIGTERM itself.
set -eu
cd "$(dirname "$0")/.."

die() {
  echo "entrypoint: $*" >&2
  exit 2
}

for name in DJANGO_SECRET_KEY JWT_SIGNING_KEY DATABASE_URL REDIS_URL EMAIL_URL METRICS_TOKEN; do
  eval "path=\${${name}_FILE:-}"
  [ -n "$path" ] || continue
  eval "value=\${${name}:-}"
  [ -z "$value" ] || die "set $name or ${name}_FILE, not both"
  [ -r "$path" ] || die "${name}_FILE=$path is not a readable file"
  value=$(cat "$path")
  [ -n "$value" ] || die "${name}_FILE=$path is empty"
  export "$name=$value"
  unset "${name}_FILE"
done
unset name path value

role=${1:-}
if [ $# -gt 0 ]; then shift; fi
case "$role" in
  rest)
    exec python -m arcana.wsgi_server "$@"
    ;;
  grpc)
    exec python manage.py grpcrunserver 0.0.0.0:50051 --workers "${GRPC_WORKERS:-2}" "$@"
    ;;
  tier)
    [ -n "${TIER_PORT:-}" ] || die "the tier role needs TIER_PORT (layered: service 50052, repository 50053; microservices: 50052)"
    exec python manage.py tierserver "0.0.0.0:$TIER_PORT" "$@"
    ;;
  migrate)
    exec python manage.py migrate --noinput "$@"
    ;;
  worker)
    exec python manage.py db_worker "$@"
    ;;
  prune)
    keep=${TASK_RESULTS_KEEP_DAYS:-14}
    case "$keep" in
      '' | *[!0-9]*) die "TASK_RESULTS_KEEP_DAYS must be a whole number of days, 0 or more (got '$keep')" ;;
    esac
    exec python manage.py prune_db_task_results --min-age-days "$keep" "$@"
    ;;
  recover)
    for name in TASK_STUCK_AFTER_SECONDS TASK_STUCK_MAX_RUNS; do
      eval "given=\${$name+x} value=\${$name:-}"
      [ -n "$given" ] || continue
      case "$value" in
        '' | *[!0-9]* | 0*) die "$name must be a whole number, 1 or more (got '$value')" ;;
      esac
    done
    unset name given value
    exec python manage.py recover_stuck_tasks "$@"
    ;;
  manage)
    exec python manage.py "$@"
    ;;
  "")
    die "usage: entrypoint.sh ROLE [ARGS...]; ROLE is rest, grpc, tier, migrate, worker, prune, recover or manage"
    ;;
  *)
    die "unknown role '$role' (rest, grpc, tier, migrate, worker, prune, recover or manage); for another command, replace the entry point: docker run --entrypoint python IMAGE manage.py ..."
    ;;
esac
