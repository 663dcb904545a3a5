#!/bin/sh
# The redis stand-in's entry point (docker/podman/standins.Containerfile), as
# the official image's: a first argument that is an option or a .conf file
# runs redis-server with it. The official image builds Redis with protected
# mode off (no password, reached over the container network, which protected
# mode refuses); Debian's is built with it on, so it is turned off here
# unless the command sets it.
set -eu
case "${1:-}" in
  -* | *.conf) set -- redis-server "$@" ;;
esac
if [ "${1:-}" = redis-server ]; then
  case " $* " in
    *" --protected-mode "*) ;;
    *) set -- "$@" --protected-mode no ;;
  esac
fi
exec "$@"
