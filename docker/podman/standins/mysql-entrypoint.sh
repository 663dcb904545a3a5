#!/bin/bash
# The mysql stand-in's entry point (docker/podman/standins.Containerfile):
# MariaDB, set up as the official mysql image sets MySQL up, for what the
# compose files use of it.
#   - A first argument that is an option runs mysqld with it (the compose
#     files' `command: [--character-set-server=..., ...]`).
#   - On an empty data directory: a server of its own on the socket only
#     (no TCP, so the `mysqladmin ping -h 127.0.0.1` health check fails until
#     the set-up is done), root's password from MYSQL_ROOT_PASSWORD, for
#     root@localhost and root@'%'; MYSQL_DATABASE, and MYSQL_USER with
#     MYSQL_PASSWORD granted it; then /docker-entrypoint-initdb.d/: *.sh run
#     when executable, else sourced (with docker_process_sql defined, as the
#     official image has it), *.sql and *.sql.gz fed to the server as root.
#   - Each MYSQL_* variable may be given as NAME_FILE (a compose secret).
# Runs as uid 999 (mysql) throughout, like the official image's server.
set -eo pipefail
shopt -s nullglob

if [ "${1:0:1}" = - ]; then
  set -- mysqld "$@"
fi

log() { echo "$(date -u +%FT%TZ) [Entrypoint]: $*"; }
die() { echo "$(date -u +%FT%TZ) [ERROR] [Entrypoint]: $*" >&2; exit 1; }

# NAME from NAME or NAME_FILE (not both); DEFAULT when neither is set.
file_env() {
  local name=$1 default=${2:-} file_name="${1}_FILE"
  local value=${!name:-} file=${!file_name:-}
  if [ -n "$value" ] && [ -n "$file" ]; then
    die "both $name and $file_name are set (but are exclusive)"
  fi
  if [ -n "$file" ]; then
    [ -r "$file" ] || die "$file_name=$file is not a readable file"
    value=$(<"$file")
  fi
  export "$name=${value:-$default}"
  unset "$file_name"
}

SOCKET=/run/mysqld/mysqld.sock

# SQL on stdin, run as root over the socket; extra arguments go to the client
# (--database=mysql). Before the set-up root has no password.
docker_process_sql() {
  local password=${MYSQL_ROOT_PASSWORD:-}
  [ -n "${_STANDIN_NO_ROOT_PASSWORD:-}" ] && password=
  MYSQL_PWD=$password mariadb --protocol=socket --socket="$SOCKET" -uroot --comments "$@"
}

# A value inside a single-quoted SQL string.
sql_escape() {
  local value=${1//\\/\\\\}
  printf '%s' "${value//\'/\\\'}"
}

setup_database() {
  file_env MYSQL_ROOT_PASSWORD
  file_env MYSQL_DATABASE
  file_env MYSQL_USER
  file_env MYSQL_PASSWORD
  file_env MYSQL_ROOT_HOST %
  if [ -z "$MYSQL_ROOT_PASSWORD" ] && [ -z "${MYSQL_ALLOW_EMPTY_PASSWORD:-}" ]; then
    die "database is uninitialized and the root password is not set: set MYSQL_ROOT_PASSWORD (or _FILE) or MYSQL_ALLOW_EMPTY_PASSWORD"
  fi
  if [ "$MYSQL_USER" = root ]; then
    die "MYSQL_USER=root: root is set up by MYSQL_ROOT_PASSWORD"
  fi

  log "initialising the database directory"
  mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db \
    --auth-root-authentication-method=normal --skip-name-resolve --rpm >/dev/null

  log "starting a temporary server (socket only)"
  "$@" --skip-networking --socket="$SOCKET" &
  local pid=$! tries
  export _STANDIN_NO_ROOT_PASSWORD=1
  for tries in $(seq 1 60); do
    if echo 'SELECT 1' | docker_process_sql --database=mysql >/dev/null 2>&1; then break; fi
    kill -0 "$pid" 2>/dev/null || die "the temporary server exited"
    [ "$tries" = 60 ] && die "the temporary server did not start"
    sleep 1
  done

  local root_password user_password
  root_password=$(sql_escape "$MYSQL_ROOT_PASSWORD")
  {
    # mariadb-install-db's extra accounts (the image's throwaway host name).
    echo "DROP USER IF EXISTS ''@'localhost', ''@'$(hostname)', 'root'@'$(hostname)';"
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$root_password';"
    if [ "$MYSQL_ROOT_HOST" != localhost ]; then
      echo "CREATE USER 'root'@'$MYSQL_ROOT_HOST' IDENTIFIED BY '$root_password';"
      echo "GRANT ALL ON *.* TO 'root'@'$MYSQL_ROOT_HOST' WITH GRANT OPTION;"
    fi
    if [ -n "$MYSQL_DATABASE" ]; then
      echo "CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\`;"
    fi
    if [ -n "$MYSQL_USER" ] && [ -n "$MYSQL_PASSWORD" ]; then
      user_password=$(sql_escape "$MYSQL_PASSWORD")
      echo "CREATE USER '$MYSQL_USER'@'%' IDENTIFIED BY '$user_password';"
      if [ -n "$MYSQL_DATABASE" ]; then
        echo "GRANT ALL ON \`${MYSQL_DATABASE//_/\\_}\`.* TO '$MYSQL_USER'@'%';"
      fi
    fi
    echo "FLUSH PRIVILEGES;"
  } | docker_process_sql --database=mysql
  unset _STANDIN_NO_ROOT_PASSWORD

  local f
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh)
        if [ -x "$f" ]; then
          log "running $f"
          "$f"
        else
          log "sourcing $f"
          # shellcheck disable=SC1090
          . "$f"
        fi
        ;;
      *.sql) log "running $f"; docker_process_sql <"$f" ;;
      *.sql.gz) log "running $f"; gunzip -c "$f" | docker_process_sql ;;
      *) log "ignoring $f" ;;
    esac
  done

  log "stopping the temporary server"
  kill -TERM "$pid"
  wait "$pid" || die "the temporary server did not stop cleanly"
  log "set-up done; starting the server"
}

if [ "$1" = mysqld ] || [ "$1" = mariadbd ]; then
  if [ ! -d /var/lib/mysql/mysql ]; then
    setup_database "$@"
  fi
  unset MYSQL_ROOT_PASSWORD MYSQL_PASSWORD
fi
exec "$@"
