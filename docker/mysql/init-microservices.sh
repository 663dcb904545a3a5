#!/bin/bash
# MySQL init script for docker/compose.microservices.yml: one database and one
# user per service (users, auth), each user granted its own database only.
# The mysql image runs it once, when the data volume is empty, as
# /docker-entrypoint-initdb.d/10-databases.sh: sourced by its entry point (not
# executable), with the root password already read from
# MYSQL_ROOT_PASSWORD_FILE. The passwords are compose secrets, made by
# scripts/compose_secrets.py. Sourced: no `set` changes, no `exit` but on error.

_arcana_sql() {
  if declare -F docker_process_sql >/dev/null; then
    docker_process_sql --database=mysql  # the entry point's own client call
  else
    MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysql --protocol=socket -uroot mysql
  fi
}

_arcana_secrets=${ARCANA_INIT_SECRETS_DIR:-/run/secrets}  # another directory: tests only
for _arcana_service in users auth; do
  _arcana_file=$_arcana_secrets/${_arcana_service}_db_password
  if [ ! -r "$_arcana_file" ]; then
    echo "init-microservices: $_arcana_file is missing (run scripts/compose_secrets.py)" >&2
    exit 1
  fi
  _arcana_password=$(cat "$_arcana_file")
  # It goes into a SQL string literal: only URL-safe characters, as generated.
  if [[ ! "$_arcana_password" =~ ^[A-Za-z0-9_-]{16,}$ ]]; then
    echo "init-microservices: $_arcana_file must hold 16 or more of [A-Za-z0-9_-]" >&2
    exit 1
  fi
  echo "init-microservices: database and user '$_arcana_service'"
  _arcana_sql <<SQL || exit 1
CREATE DATABASE IF NOT EXISTS \`$_arcana_service\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS '$_arcana_service'@'%' IDENTIFIED BY '$_arcana_password';
GRANT ALL PRIVILEGES ON \`$_arcana_service\`.* TO '$_arcana_service'@'%';
SQL
done
unset -f _arcana_sql
unset _arcana_secrets _arcana_service _arcana_file _arcana_password
