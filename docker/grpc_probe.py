"""A gRPC health probe run inside a container (Kubernetes exec probes).

    python docker/grpc_probe.py [PORT] [--alive] [--service NAME]
                                [--tls [--server-name NAME]] [--timeout SECONDS]

Asks ``grpc.health.v1.Health/Check`` on 127.0.0.1:PORT (default: ``TIER_PORT``,
the port ``docker/entrypoint.sh tier`` listens on) and exits 0 or 1 (2 for a
usage error), printing one line on failure, which the kubelet records in the
pod's events.

- Readiness (the default): 0 when ``--service`` (default ``""``, the whole
  server) is SERVING. The servers turn NOT_SERVING while what they depend on
  (the database, the tier below) is down, and on shutdown.
- ``--alive`` (liveness, startup): 0 when the server answers at all, SERVING
  or NOT_SERVING, or is too busy to (RESOURCE_EXHAUSTED). A database outage
  must take pods out of rotation, never get them restarted in a loop.

Why this and not the kubelet's native ``grpc:`` probe for internal ports: the
kubelet speaks plaintext only and cannot present a client certificate, and
internal tier ports accept mutual TLS alone. A plaintext health-only port
beside each internal server would be a second, unauthenticated listener to
keep off the network; instead this runs in the pod with the pod's own
certificate (``--tls``: ``ARCANA_INTERNAL_TLS_CERT`` / ``_KEY`` / ``_CA``, the
files the tier itself uses) and checks the server's certificate for
``--server-name`` (default: the first DNS name in the pod's own certificate,
the name callers dial, e.g. ``service``), so the probe also fails when the
mounted files do not fit together. One probe line serves every tier.

Plain grpcio, no Django: it starts in a fraction of a second and needs no
settings, database or key.
"""

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import grpc
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

TLS_ENV = ("ARCANA_INTERNAL_TLS_CERT", "ARCANA_INTERNAL_TLS_KEY", "ARCANA_INTERNAL_TLS_CA")
OK, FAILED, USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments or missing TLS files: a deployment fault, exit code 2."""


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port out of range: {port}")
    return port


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="gRPC health probe for exec probes.")
    parser.add_argument(
        "port", type=_port, nargs="?", help="the gRPC port on 127.0.0.1 (default: $TIER_PORT)"
    )
    parser.add_argument("--service", default="", help='health service name ("": the server)')
    parser.add_argument(
        "--alive", action="store_true", help="succeed on any answer (liveness), not SERVING only"
    )
    parser.add_argument(
        "--tls", action="store_true", help="mutual TLS with the ARCANA_INTERNAL_TLS_* files"
    )
    parser.add_argument(
        "--server-name", default="", help="the server certificate's name (default: our own's)"
    )
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    return parser


def tls_files(environ: Mapping[str, str]) -> tuple[bytes, bytes, bytes]:
    """(certificate chain, key, CA): the tier's own mutual-TLS files."""
    contents: list[bytes] = []
    for name in TLS_ENV:
        path = environ.get(name, "")
        if not path:
            raise UsageError(f"--tls needs {name}")
        try:
            contents.append(Path(path).read_bytes())
        except OSError as exc:
            raise UsageError(f"{name}={path}: {exc.strerror}") from None
    return contents[0], contents[1], contents[2]


def first_dns_name(chain: bytes) -> str:
    """The first DNS name of the leaf certificate in ``chain`` (PEM)."""
    try:
        leaf = x509.load_pem_x509_certificate(chain)
    except ValueError:
        raise UsageError("ARCANA_INTERNAL_TLS_CERT is not a PEM certificate") from None
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = None
    dns = names.get_values_for_type(x509.DNSName) if names is not None else []
    if not dns:
        raise UsageError("the certificate names no DNS name: pass --server-name")
    return dns[0]


def _port_of(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    if args.port is not None:
        return int(args.port)
    value = environ.get("TIER_PORT", "")
    try:
        return _port(value)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"no PORT given and TIER_PORT is unusable: {exc}") from None


def probe(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[int, str]:
    """(exit code, reason) of one health check."""
    target = f"127.0.0.1:{_port_of(args, environ)}"
    if args.tls:
        chain, key, ca = tls_files(environ)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=chain
        )
        server_name = args.server_name or first_dns_name(chain)
        channel = grpc.secure_channel(
            target, credentials, options=[("grpc.ssl_target_name_override", server_name)]
        )
    else:
        channel = grpc.insecure_channel(target)
    with channel:
        request = health_pb2.HealthCheckRequest(service=args.service)
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(request, timeout=args.timeout)
        except grpc.RpcError as exc:
            code = exc.code()
            if args.alive and code is grpc.StatusCode.RESOURCE_EXHAUSTED:
                return OK, "busy"
            return FAILED, f"{target}: {code.name} {exc.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if reply.status == health_pb2.HealthCheckResponse.SERVING or args.alive:
        return OK, status
    return FAILED, f"{target} {args.service or '(server)'}: {status}"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        code, reason = probe(args, os.environ)
    except UsageError as exc:
        print(f"grpc_probe: {exc}", file=sys.stderr)
        return USAGE
    if code != OK:
        print(f"grpc_probe: {reason}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
