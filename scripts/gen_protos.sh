#!/usr/bin/env bash
# Regenerate the Python for protos/arcana/v1/*.proto (the public API) and
# protos/arcana/internal/v1/*.proto (between tiers) beside the protos.
#   scripts/gen_protos.sh           regenerate in place
#   scripts/gen_protos.sh --check   regenerate into a temp dir; exit 1 if the
#                                   committed files differ (CI runs this)
# Compiled with `-I .` from the repo root so imports read
# `from protos.arcana.v1 import users_pb2`; a proto root named `arcana` would
# shadow the Django project package. Regenerate whenever grpcio-tools or
# protobuf move (they are pinned together in requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
PROTO_DIRS=(protos/arcana/v1 protos/arcana/internal/v1)

check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

generate() {  # $1: output root (the tree protos/arcana/... lands under)
  for dir in "${PROTO_DIRS[@]}"; do
    "$PYTHON" -m grpc_tools.protoc -I . \
      --python_out="$1" --grpc_python_out="$1" --pyi_out="$1" \
      "$dir"/*.proto
    # mypy follows imports into generated code despite pyproject's exclude:
    # the service modules are untyped, and the stubs use a bare Mapping.
    for module in "$1/$dir"/*_pb2_grpc.py; do
      sed -i '1i # mypy: ignore-errors' "$module"
    done
    for stub in "$1/$dir"/*_pb2.pyi; do
      sed -i '1i # mypy: disable-error-code="type-arg"' "$stub"
    done
  done
}

if [ "$check" -eq 0 ]; then
  generate .
  echo "gen_protos: regenerated ${PROTO_DIRS[*]}"
  exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
generate "$tmp"
status=0
for dir in "${PROTO_DIRS[@]}"; do
  for generated in "$tmp/$dir"/*_pb2*; do
    committed="$dir/$(basename "$generated")"
    if ! cmp -s "$generated" "$committed"; then
      echo "gen_protos: $committed is stale or missing" >&2
      status=1
    fi
  done
  for committed in "$dir"/*_pb2*; do
    [ -e "$tmp/$committed" ] || { echo "gen_protos: $committed has no .proto" >&2; status=1; }
  done
done
[ "$status" -eq 0 ] && echo "gen_protos: generated code is up to date"
[ "$status" -eq 0 ] || echo "gen_protos: run scripts/gen_protos.sh and commit the result" >&2
exit "$status"
