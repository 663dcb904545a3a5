#!/usr/bin/env bash
# Render each Kubernetes overlay and validate it offline against the API
# schemas of the Kubernetes versions we support (CI runs this).
#   scripts/k8s_check.sh [OVERLAY_DIR...]     default: docker/k8s/overlays/*
#   K8S_VERSIONS="1.35.0 1.37.0"              the oldest supported, the newest
#   K8S_OUT=DIR                               keep the rendered YAML there
# Renders with `kubectl kustomize` (no cluster needed) and validates with
# kubernetes-validate (requirements-dev.txt; the JSON schemas ship inside the
# package, nothing is downloaded) in strict mode: unknown fields fail. A kind
# it has no schema for fails too (it only warns). The invariants (who holds
# which secret, probes, budgets, network rules) are tests/test_k8s.py's.
set -euo pipefail
cd "$(dirname "$0")/.."

VALIDATE=${VALIDATE:-.venv/bin/kubernetes-validate}
read -r -a versions <<<"${K8S_VERSIONS:-1.35.0 1.37.0}"

if ! command -v kubectl >/dev/null 2>&1; then
  echo "k8s_check: kubectl is not installed (needed for kubectl kustomize)" >&2
  exit 1
fi
if [ ! -x "$VALIDATE" ]; then
  echo "k8s_check: $VALIDATE is missing: scripts/bootstrap.sh --dev installs it" >&2
  exit 1
fi

# The gateway's nginx.conf is made from docker/nginx/arcana.conf.template.
python3 scripts/gateway.py k8s --check || failed_gateway=1

overlays=("$@")
[ ${#overlays[@]} -gt 0 ] || overlays=(docker/k8s/overlays/*/)
out=${K8S_OUT:-$(mktemp -d)}
[ -n "${K8S_OUT:-}" ] || trap 'rm -rf "$out"' EXIT
mkdir -p "$out"

args=(--strict --quiet)
for version in "${versions[@]}"; do args+=(-k "$version"); done

failed=0
for overlay in "${overlays[@]}"; do
  overlay=${overlay%/}
  rendered="$out/$(basename "$overlay").yaml"
  if ! kubectl kustomize "$overlay" >"$rendered"; then
    echo "FAIL $overlay: kubectl kustomize failed" >&2
    failed=1
    continue
  fi
  # Exit status alone misses kinds without a schema (reported as WARN).
  report=$("$VALIDATE" "${args[@]}" "$rendered" 2>&1) && status=0 || status=$?
  if [ $status -ne 0 ] || [ -n "$report" ]; then
    printf '%s\n' "$report" >&2
    echo "FAIL $overlay (Kubernetes ${versions[*]})" >&2
    failed=1
  else
    echo "ok   $overlay: $(grep -c '^kind:' "$rendered") objects valid for Kubernetes ${versions[*]}"
  fi
done
[ -z "${failed_gateway:-}" ] || failed=1
exit $failed
