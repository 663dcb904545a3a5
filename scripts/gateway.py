"""Render the microservices gateway's nginx template (docker/nginx/arcana.conf.template).

    python3 scripts/gateway.py render DIR     a local run: DIR/arcana.conf (the
                                              template, from the environment) and
                                              DIR/nginx.conf (a main config that
                                              includes it; scripts/gateway.sh runs it)
    python3 scripts/gateway.py k8s [--check]  the Kubernetes overlay's copy,
                                              docker/k8s/overlays/microservices/
                                              gateway/nginx.conf (--check: fail
                                              when it is not what the template makes)

Substitutes only the template's own variables (``${NAME}``), as the official
nginx image's envsubst does with the variables set in a container, and
refuses a missing or malformed one with one line on stderr (exit status 2),
before nginx sees anything. Standard library only: it runs before any
virtual environment exists.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "docker" / "nginx" / "arcana.conf.template"
K8S_CONFIG = ROOT / "docker" / "k8s" / "overlays" / "microservices" / "gateway" / "nginx.conf"
MIME_TYPES = "/etc/nginx/mime.types"  # Debian's nginx-common and the nginx images alike

UPSTREAMS = (
    "USERS_REST_UPSTREAM",
    "AUTH_REST_UPSTREAM",
    "USERS_GRPC_UPSTREAM",
    "AUTH_GRPC_UPSTREAM",
)
LISTENS = ("REST_PORT", "GRPC_PORT")
VARIABLES = (*UPSTREAMS, *LISTENS, "FORWARDED_PROTO")

_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
_PORT = r"(?P<port>[0-9]{1,5})"
# host:port, then nginx "server" parameters (resolve, max_fails=3, backup, ...).
_UPSTREAM = re.compile(rf"{_HOST}:{_PORT}(?: [a-z_]+(?:=[A-Za-z0-9.]+)?)*")
_LISTEN = re.compile(rf"(?:{_HOST}:)?{_PORT}")
_FORWARDED_PROTO = re.compile(r"\$[a-z_]+|https?")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Kubernetes: the headless Services of the overlay (every replica's address,
# looked up again every 5 s by "resolve": new replicas get calls, gone ones
# none); TLS ends at the Ingress, which sets X-Forwarded-Proto.
K8S_VALUES = {
    "USERS_REST_UPSTREAM": "users-rest.arcana.svc.cluster.local:8000 resolve",
    "AUTH_REST_UPSTREAM": "auth-rest.arcana.svc.cluster.local:8000 resolve",
    "USERS_GRPC_UPSTREAM": "users-grpc.arcana.svc.cluster.local:50051 resolve",
    "AUTH_GRPC_UPSTREAM": "auth-grpc.arcana.svc.cluster.local:50051 resolve",
    "REST_PORT": "8000",
    "GRPC_PORT": "50051",
    "FORWARDED_PROTO": "$http_x_forwarded_proto",
}


class GatewayConfigError(Exception):
    """A variable is missing or malformed: the message is one line for the operator."""


def _check(name: str, value: str) -> None:
    if name in UPSTREAMS:
        pattern, shape = _UPSTREAM, "host:port (then nginx server parameters, if any)"
    elif name in LISTENS:
        pattern, shape = _LISTEN, "a port or address:port"
    else:
        pattern, shape = _FORWARDED_PROTO, "$scheme, $http_x_forwarded_proto, http or https"
    match = pattern.fullmatch(value)
    port = match.groupdict().get("port") if match else None
    if match is None or (port is not None and not 1 <= int(port) <= 65535):
        raise GatewayConfigError(f"{name} must be {shape}, got {value!r}")


def render_template(values: Mapping[str, str], template: str | None = None) -> str:
    """The template with its variables replaced by ``values`` (each checked)."""
    missing = [name for name in VARIABLES if not values.get(name, "").strip()]
    if missing:
        raise GatewayConfigError(f"{', '.join(missing)} not set (see {TEMPLATE.relative_to(ROOT)})")
    for name in VARIABLES:
        _check(name, values[name].strip())
    text = TEMPLATE.read_text() if template is None else template

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in VARIABLES:
            raise GatewayConfigError(f"the template names an unknown variable ${{{name}}}")
        return values[name].strip()

    return _PLACEHOLDER.sub(replace, text)


def template_variables(template: str | None = None) -> set[str]:
    """Every ``${NAME}`` the template uses."""
    return set(_PLACEHOLDER.findall(TEMPLATE.read_text() if template is None else template))


def local_main_config(run_dir: Path, *, workers: int = 2, user: str | None = None) -> str:
    """A main config for a local run that includes ``run_dir/arcana.conf`` inside
    an http block like the official image's (so that a directive the image
    already sets would fail here too); everything it writes stays in
    ``run_dir``. ``user``: the workers' user when nginx starts as root."""
    run = run_dir.resolve()
    lines = [
        "# Made by scripts/gateway.py for a local run; edit docker/nginx/arcana.conf.template.",
        "daemon off;",
        *_main_head(
            workers=str(workers),
            pid=f"{run}/nginx.pid",
            error_log="stderr notice",
            user=user,
            temp=lambda kind: f"{run}/{kind}_temp",
            indent="    ",
        ),
        "    keepalive_timeout 65;",
        f"    include {run}/arcana.conf;",
        "}",
        "",
    ]
    return "\n".join(lines)


def _main_head(
    *,
    workers: str,
    pid: str,
    error_log: str,
    user: str | None,
    temp: Callable[[str], str],
    indent: str,
) -> list[str]:
    """The main config both copies share, up to the open http block: the
    process, its files, and where nginx buffers (all writable paths)."""
    return [
        f"worker_processes {workers};",
        f"pid {pid};",
        f"error_log {error_log};",
        *([f"user {user};"] if user else []),
        "",
        "events {",
        "    worker_connections 1024;",
        "}",
        "",
        "http {",
        f"{indent}include {MIME_TYPES};",
        f"{indent}default_type application/octet-stream;",
        f"{indent}sendfile on;",
        *(f"{indent}{kind}_temp_path {temp(kind)};" for kind in _TEMP_KINDS),
    ]


_TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def render_local(run_dir: Path, environ: Mapping[str, str]) -> Path:
    """Write ``run_dir/arcana.conf`` and ``run_dir/nginx.conf``; returns the latter."""
    body = render_template(environ)
    run_dir.mkdir(parents=True, exist_ok=True)
    workers = environ.get("GATEWAY_WORKERS", "2")
    if not workers.isdigit() or int(workers) < 1:
        raise GatewayConfigError(f"GATEWAY_WORKERS must be a number >= 1, got {workers!r}")
    # As root, nginx would run its workers as "nobody", who cannot write run_dir.
    user = _current_user() if os.geteuid() == 0 else None
    (run_dir / "arcana.conf").write_text(body)
    main = run_dir / "nginx.conf"
    main.write_text(local_main_config(run_dir, workers=int(workers), user=user))
    return main


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def k8s_config() -> str:
    """The Kubernetes overlay's nginx.conf: the template with the overlay's
    names, inside a main config for the unprivileged image on a read-only root."""
    body = render_template(K8S_VALUES)
    head = [
        "# MADE BY scripts/gateway.py k8s FROM docker/nginx/arcana.conf.template: edit that",
        "# and run it again (tests/test_gateway.py fails while this copy is stale).",
        "# The microservices gateway inside Kubernetes, mounted from the ConfigMap",
        "# gateway-nginx. The Ingress ends TLS and sends here; the services count two",
        "# proxies (NUM_PROXIES=2: the Ingress, then this). Runs as an unprivileged user",
        "# on a read-only root: everything it writes goes to /tmp. Needs nginx >= 1.27.3",
        '# ("resolve" in upstream blocks).',
        *_main_head(
            workers="auto",
            pid="/tmp/nginx.pid",  # noqa: S108 - the pod's own tmpfs (read-only root)
            error_log="/dev/stderr warn",
            user=None,
            temp=lambda kind: f"/tmp/{kind}",  # noqa: S108 - the pod's own tmpfs
            indent="",
        ),
        "# The services' Services are headless: every replica's address, looked up",
        '# again every 5 s ("resolve" in the upstreams below).',
        "resolver kube-dns.kube-system.svc.cluster.local valid=5s ipv6=off;",
        "resolver_timeout 2s;",
        "",
    ]
    return "\n".join(head) + body.rstrip("\n") + "\n}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    local = commands.add_parser("render", help="render for a local run into DIR")
    local.add_argument("dir", type=Path)
    kube = commands.add_parser("k8s", help="write (or --check) the Kubernetes overlay's copy")
    kube.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.command == "render":
            print(render_local(args.dir, os.environ).resolve())  # nginx -c: from its prefix
            return 0
        made = k8s_config()
    except GatewayConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if K8S_CONFIG.read_text() != made:
            stale = K8S_CONFIG.relative_to(ROOT)
            print(f"gateway: {stale} is stale: run scripts/gateway.py k8s", file=sys.stderr)
            return 1
        return 0
    K8S_CONFIG.write_text(made)
    print(K8S_CONFIG.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
