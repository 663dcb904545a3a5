"""The image's health check: ``python docker/healthcheck.py [ROLE] [--port N]
[--alive] [--service NAME]``.

The one check of every container: Docker's ``HEALTHCHECK``, the compose
files' health checks and the Kubernetes exec probes (docker/k8s) all run it.
One check per entry-point role (docker/entrypoint.sh), so a gRPC container is
not judged by an HTTP probe:

- ``rest``: ``GET /healthz`` on the REST server's port (``REST_BIND``, else 8000)
  answers 200. The Host header is the first of ``DJANGO_ALLOWED_HOSTS``.
- ``grpc``: ``grpc.health.v1.Health/Check`` for the whole server on 50051
  answers SERVING (it follows the database, or the tier below). TLS when
  ``GRPC_TLS_CERT`` is set, trusting ``ARCANA_HEALTHCHECK_CA`` (else the
  system's CAs) for the name ``ARCANA_HEALTHCHECK_TLS_NAME`` (else localhost).
- ``tier``: the same Check on ``TIER_PORT``, over mutual TLS with this
  container's own tier certificate (``ARCANA_INTERNAL_TLS_CERT`` / ``_KEY`` /
  ``_CA``), plaintext only with ``ARCANA_INTERNAL_INSECURE=true``. The server
  presents that same certificate, so the name checked is its first DNS name
  (``ARCANA_HEALTHCHECK_TLS_NAME`` overrides it): mounted files that do not
  fit together fail the check. This is why internal ports need no plaintext
  health listener: the kubelet's native ``grpc:`` probe cannot present a
  client certificate, this check can.
- ``migrate``: a one-shot job is healthy while it runs.
- ``worker``: the mail worker (``manage.py db_worker``) serves no port; it is
  healthy while it runs (it is the container's PID 1: when it dies, the
  container stops and its restart policy brings it back). A worker that runs
  but cannot send leaves its mail queued, retried with back-off
  (users/tasks.py).

``--service NAME`` checks one health service name instead of the whole server.
``--alive`` (liveness and start-up probes) passes on any answer, SERVING or
NOT_SERVING, or too busy to answer (RESOURCE_EXHAUSTED): a database outage
must take a server out of rotation, never get it restarted in a loop.

Without ROLE, the role is read from the command line of the server the
container runs (the entry point execs it: PID 1, or the first process found
when an init runs as PID 1).

Exit status 0 is healthy and 1 unhealthy (Docker's convention), with the
reason on stderr. Only the standard library and grpcio: no Django settings
to load, so the check stays quick.
"""

import argparse
import http.client
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc

ROLES = ("rest", "grpc", "tier", "migrate", "worker")
GRPC_PORT = 50051
REST_PORT = 8000
TIMEOUT = 2.0
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
SERVING = 1  # grpc.health.v1.HealthCheckResponse.ServingStatus
_TRUE = frozenset({"1", "true", "yes", "on"})


class Unhealthy(Exception):
    """Why the check failed, in one line."""


def role_of(argv: Sequence[str]) -> str | None:
    """The entry-point role of a process, from its command line."""
    names = [Path(arg).name for arg in argv]
    if "entrypoint.sh" in names:
        index = names.index("entrypoint.sh") + 1
        return argv[index] if index < len(argv) and argv[index] in ROLES else None
    if "-m" in argv and "arcana.wsgi_server" in argv:
        return "rest"
    if "manage.py" in names:
        for command, role in (("grpcrunserver", "grpc"), ("tierserver", "tier")):
            if command in argv:
                return role
        if "migrate" in argv:
            return "migrate"
        if "db_worker" in argv:
            return "worker"
    return None


def detect_role(proc: Path = Path("/proc")) -> str:
    """The role of the server in this container: PID 1's, or the first found."""
    pids = sorted(int(entry.name) for entry in proc.iterdir() if entry.name.isdigit())
    for pid in pids:
        if pid == os.getpid():
            continue
        try:
            raw = (proc / str(pid) / "cmdline").read_bytes()
        except OSError:  # the process ended, or is not ours to read
            continue
        role = role_of([part.decode(errors="replace") for part in raw.split(b"\0") if part])
        if role is not None:
            return role
    raise Unhealthy("no rest, grpc, tier, migrate or worker process found in this container")


def _port_of(bind: str) -> int:
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise Unhealthy(f"REST_BIND={bind!r} is not HOST:PORT")
    return int(port)


def host_header(environ: Mapping[str, str]) -> str:
    """A host Django accepts: the first of DJANGO_ALLOWED_HOSTS (default localhost)."""
    for host in environ.get("DJANGO_ALLOWED_HOSTS", "").split(","):
        host = host.strip().lstrip(".")
        if host and host != "*":
            return host
    return "localhost"


def check_rest(port: int, environ: Mapping[str, str]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request("GET", "/healthz", headers={"Host": host_header(environ)})
        status = connection.getresponse().status
    except OSError as exc:
        raise Unhealthy(f"GET /healthz on port {port}: {exc}") from None
    finally:
        connection.close()
    if status != 200:
        raise Unhealthy(f"GET /healthz on port {port} answered {status}")


def serving_status(reply: bytes) -> int:
    """The ``status`` field (1, varint) of a serialized HealthCheckResponse."""
    position, status = 0, 0  # proto3: an absent field is UNKNOWN (0)
    while position < len(reply):
        key, position = _varint(reply, position)
        if key & 7 != 0:  # only varint fields are expected here
            raise Unhealthy("undecodable health response")
        value, position = _varint(reply, position)
        if key >> 3 == 1:
            status = value
    return status


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while position < len(data):
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
    raise Unhealthy("undecodable health response")


def _read(name: str, environ: Mapping[str, str]) -> bytes:
    path = environ.get(name, "")
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise Unhealthy(f"{name}={path!r}: {exc.strerror}") from None


def first_dns_name(chain: bytes) -> str | None:
    """The first DNS name of the leaf certificate in ``chain`` (PEM), if any."""
    from cryptography import x509  # the image has it (pyjwt's crypto extra)

    try:
        leaf = x509.load_pem_x509_certificate(chain)
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    dns = names.get_values_for_type(x509.DNSName)
    return dns[0] if dns else None


def _tls_name(environ: Mapping[str, str], own: bytes | None = None) -> tuple[tuple[str, str], ...]:
    name = environ.get("ARCANA_HEALTHCHECK_TLS_NAME", "")
    if not name and own is not None:
        name = first_dns_name(own) or ""
    return (("grpc.ssl_target_name_override", name or "localhost"),)


def health_request(service: str) -> bytes:
    """A serialized HealthCheckRequest: field 1, the service name."""
    name = service.encode()
    return b"\x0a" + _encode_varint(len(name)) + name if name else b""


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def check_grpc(
    port: int,
    credentials: grpc.ChannelCredentials | None,
    options: Sequence[tuple[str, str]] = (),
    *,
    service: str = "",
    alive: bool = False,
) -> None:
    target = f"127.0.0.1:{port}"
    if credentials is None:
        channel = grpc.insecure_channel(target)
    else:
        channel = grpc.secure_channel(target, credentials, options=options)
    try:
        check = channel.unary_unary(HEALTH_CHECK, None, None)  # bytes in, bytes out
        reply: bytes = check(health_request(service), timeout=TIMEOUT)
    except grpc.RpcError as exc:
        if alive and exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
            return  # too busy to answer is alive
        raise Unhealthy(f"health Check on port {port}: {exc.code().name}") from None
    finally:
        channel.close()
    status = serving_status(reply)
    if status != SERVING and not alive:
        raise Unhealthy(f"health Check on port {port}: status {status}, not SERVING (1)")


def public_grpc_credentials(environ: Mapping[str, str]) -> grpc.ChannelCredentials | None:
    if not environ.get("GRPC_TLS_CERT"):
        return None
    ca = _read("ARCANA_HEALTHCHECK_CA", environ) if environ.get("ARCANA_HEALTHCHECK_CA") else None
    return grpc.ssl_channel_credentials(root_certificates=ca)


def tier_credentials(
    environ: Mapping[str, str],
) -> tuple[grpc.ChannelCredentials | None, bytes | None]:
    """The container's own mutual-TLS credentials and certificate chain
    (None, None: plaintext, allowed)."""
    names = ("ARCANA_INTERNAL_TLS_CERT", "ARCANA_INTERNAL_TLS_KEY", "ARCANA_INTERNAL_TLS_CA")
    if not any(environ.get(name) for name in names):
        if environ.get("ARCANA_INTERNAL_INSECURE", "").strip().lower() in _TRUE:
            return None, None
        raise Unhealthy("no internal TLS files (ARCANA_INTERNAL_TLS_CERT, _KEY and _CA)")
    chain, key, ca = (_read(name, environ) for name in names)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=chain
    )
    return credentials, chain


def tier_port(environ: Mapping[str, str]) -> int:
    raw = environ.get("TIER_PORT", "")
    if not raw.isdigit():
        raise Unhealthy(f"TIER_PORT={raw!r} is not a port")
    return int(raw)


def check(
    role: str,
    port: int | None,
    environ: Mapping[str, str],
    *,
    service: str = "",
    alive: bool = False,
) -> None:
    if role == "rest":
        check_rest(port or _port_of(environ.get("REST_BIND") or f"0.0.0.0:{REST_PORT}"), environ)
    elif role == "grpc":
        credentials = public_grpc_credentials(environ)
        check_grpc(port or GRPC_PORT, credentials, _tls_name(environ), service=service, alive=alive)
    elif role == "tier":
        credentials, own = tier_credentials(environ)
        check_grpc(
            port or tier_port(environ),
            credentials,
            _tls_name(environ, own),
            service=service,
            alive=alive,
        )
    elif role not in ("migrate", "worker"):
        raise Unhealthy(f"unknown role {role!r} ({', '.join(ROLES)})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Health check of this container's server.")
    parser.add_argument("role", nargs="?", choices=ROLES, help="default: detected")
    parser.add_argument("--port", type=int, help="default: the role's port")
    parser.add_argument("--service", default="", help='gRPC health service ("": the server)')
    parser.add_argument(
        "--alive", action="store_true", help="gRPC: pass on any answer (liveness), not SERVING only"
    )
    options = parser.parse_args(argv)
    try:
        role = options.role or detect_role()
        check(role, options.port, os.environ, service=options.service, alive=options.alive)
    except Unhealthy as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
