#!/bin/sh
# The nginx stand-in's entry point (docker/podman/standins.Containerfile): the
# official nginx image's template step (its
# /docker-entrypoint.d/20-envsubst-on-templates.sh), then the command.
# Each /etc/nginx/templates/NAME.template becomes /etc/nginx/conf.d/NAME with
# envsubst replacing only the variables set in the container's environment
# (nginx's own $variables stay as they are). The same settings as the official
# image: NGINX_ENVSUBST_TEMPLATE_DIR, _TEMPLATE_SUFFIX, _OUTPUT_DIR, _FILTER.
set -eu
if [ "${1:-}" = nginx ] || [ "${1:-}" = nginx-debug ]; then
  template_dir=${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}
  suffix=${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}
  output_dir=${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}
  filter=${NGINX_ENVSUBST_FILTER:-}
  # shellcheck disable=SC2016,SC2046  # '${NAME}' for envsubst, one word per name
  defined_envs=$(printf '${%s} ' $(awk "END { for (name in ENVIRON) { print ( name ~ /${filter}/ ) ? name : \"\" } }" </dev/null))
  if [ -d "$template_dir" ]; then
    find "$template_dir" -follow -type f -name "*$suffix" -print | while read -r template; do
      relative=${template#"$template_dir/"}
      output=$output_dir/${relative%"$suffix"}
      mkdir -p "$(dirname "$output")"
      echo "$0: running envsubst on $template to $output"
      envsubst "$defined_envs" <"$template" >"$output"
    done
  fi
fi
exec "$@"
