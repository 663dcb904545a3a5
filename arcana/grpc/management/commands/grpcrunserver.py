"""``manage.py grpcrunserver [ADDR:PORT]``: the production gRPC server.

Replaces django-grpc-framework's command of the same name, which Django 5
refuses to load (see ``arcana.core.grpc_compat``).
"""

import argparse
import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from arcana.core.pem import TlsError
from arcana.grpc.server import ArcanaServer, TlsFiles, serve, supervise

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 50051


def parse_address(value: str) -> str:
    """``PORT``, ``HOST:PORT``, ``:PORT`` or ``[IPV6]:PORT`` -> ``host:port``."""
    if value.isdigit():
        host, port = DEFAULT_HOST, value
    else:
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit():
            raise CommandError(f"{value!r} is not a valid ADDR:PORT.")
        host = host or DEFAULT_HOST
    if not 0 <= int(port) <= 65535:
        raise CommandError(f"{port} is not a valid port number.")
    return f"{host}:{int(port)}"


def tls_files(cert: str | None, key: str | None, client_ca: str | None) -> TlsFiles | None:
    """The TLS files the options name, read and checked; ``None`` for plaintext."""
    if not cert and not key:
        if client_ca:
            raise CommandError("--tls-client-ca needs --tls-cert and --tls-key.")
        return None
    if not cert or not key:
        missing = "--tls-cert" if not cert else "--tls-key"
        raise CommandError(f"--tls-cert and --tls-key go together: {missing} is missing.")
    try:
        return TlsFiles.read(cert=cert, key=key, client_ca=client_ca)
    except TlsError as exc:
        raise CommandError(str(exc)) from None


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


def add_process_arguments(parser: CommandParser) -> None:
    """The options every gRPC server command takes: threads, processes, grace."""
    parser.add_argument(
        "--max-workers",
        type=_positive_int,
        default=settings.GRPC_MAX_WORKERS,
        help="Threads serving unary calls, per process (default: GRPC_MAX_WORKERS).",
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="Server processes sharing the port through SO_REUSEPORT (default 1).",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=settings.GRPC_SHUTDOWN_GRACE,
        help="Seconds in-flight calls get on shutdown (default: GRPC_SHUTDOWN_GRACE).",
    )


class Command(BaseCommand):
    help = (
        "Run the gRPC server (arcana.v1 UserService and AuthService, health, reflection) "
        "until SIGTERM or SIGINT, then drain in-flight calls."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "address",
            nargs="?",
            default=f"{DEFAULT_HOST}:{DEFAULT_PORT}",
            help=f"ADDR:PORT or PORT to listen on (default {DEFAULT_HOST}:{DEFAULT_PORT}).",
        )
        add_process_arguments(parser)
        parser.add_argument(
            "--max-streams",
            type=_positive_int,
            default=settings.GRPC_MAX_STREAMS,
            help="Streams (reflection, health Watch) open at once per process, on threads of "
            "their own; more get RESOURCE_EXHAUSTED (default: GRPC_MAX_STREAMS).",
        )
        parser.add_argument(
            "--max-concurrent-rpcs",
            type=_positive_int,
            default=settings.GRPC_MAX_CONCURRENT_RPCS,
            help="Calls admitted at once per process, running or queued; more get "
            "RESOURCE_EXHAUSTED (default: GRPC_MAX_CONCURRENT_RPCS).",
        )
        parser.add_argument(
            "--reflection",
            action=argparse.BooleanOptionalAction,
            default=settings.GRPC_REFLECTION,
            help="Offer server reflection (default: GRPC_REFLECTION, on); "
            "consider --no-reflection in production.",
        )
        parser.add_argument(
            "--tls-cert",
            default=settings.GRPC_TLS_CERT or None,
            metavar="PEM",
            help="Serve TLS with this certificate chain (needs --tls-key; default: GRPC_TLS_CERT).",
        )
        parser.add_argument(
            "--tls-key",
            default=settings.GRPC_TLS_KEY or None,
            metavar="PEM",
            help="The certificate's unencrypted private key (default: GRPC_TLS_KEY).",
        )
        parser.add_argument(
            "--tls-client-ca",
            default=settings.GRPC_TLS_CLIENT_CA or None,
            metavar="PEM",
            help="Mutual TLS: require client certificates signed by this CA "
            "(default: GRPC_TLS_CLIENT_CA).",
        )
        parser.add_argument(
            "--worker-ports",
            type=_positive_int,
            default=settings.GRPC_WORKER_PORTS,
            metavar="BASE",
            help="With --workers N: worker i also listens on port BASE+i, for balancers that "
            "spread calls, not connections, over the workers (default: GRPC_WORKER_PORTS, off).",
        )
        parser.add_argument(
            "--max-message-bytes",
            type=_positive_int,
            default=settings.GRPC_MAX_MESSAGE_BYTES,
            help="Largest message sent or received (default: GRPC_MAX_MESSAGE_BYTES).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tier = settings.ARCANA_DEPLOYMENT.tier
        if tier is not None and str(tier) != "controller":
            raise CommandError(
                f"The public gRPC server runs in monolithic mode or the controller tier; "
                f"the {tier} tier runs `manage.py tierserver`."
            )
        address = parse_address(options["address"])
        if options["grace"] < 0:
            raise CommandError("--grace must not be negative.")
        if options["max_concurrent_rpcs"] <= options["max_streams"]:
            raise CommandError("--max-concurrent-rpcs must exceed --max-streams.")
        own_port_base = own_ports(address, options["workers"], options["worker_ports"])
        server_options = {
            "max_workers": options["max_workers"],
            "max_message_bytes": options["max_message_bytes"],
            "grace": options["grace"],
            "max_streams": options["max_streams"],
            "max_concurrent_rpcs": options["max_concurrent_rpcs"],
            "reflection": options["reflection"],
            "tls": tls_files(options["tls_cert"], options["tls_key"], options["tls_client_ca"]),
        }
        run_servers(
            self,
            address,
            options["workers"],
            "gRPC server",
            server_options,
            own_port_base=own_port_base,
        )


def own_ports(address: str, workers: int, base: int | None) -> int | None:
    """``--worker-ports BASE`` checked against the address and worker count."""
    if base is None:
        return None
    if workers < 2:
        raise CommandError("--worker-ports needs --workers 2 or more.")
    last = base + workers - 1
    if last > 65535:
        raise CommandError(f"--worker-ports {base} with {workers} workers runs past port 65535.")
    shared = int(address.rpartition(":")[2])
    if base <= shared <= last:
        raise CommandError(f"--worker-ports {base}..{last} include the shared port {shared}.")
    return base


def run_servers(
    command: BaseCommand,
    address: str,
    workers: int,
    what: str,
    server_options: dict[str, Any],
    *,
    own_port_base: int | None = None,
) -> None:
    """Serve on ``address`` until SIGTERM/SIGINT: in this process, or in
    ``workers`` processes sharing the port (each also on ``own_port_base``
    + its index, when given). ``what`` names the server in the lines it
    prints ("gRPC server", "service tier")."""

    def ready(server: ArcanaServer) -> None:
        command.stdout.write(
            f"{what} listening on port {server.port} ({server.security}, "
            f"pid {os.getpid()}); quit with SIGTERM or CONTROL-C."
        )
        command.stdout.flush()  # whoever started us may be waiting for this line

    if workers == 1:
        try:
            serve(address, on_ready=ready, **server_options)
        except OSError as exc:
            raise CommandError(str(exc)) from None
        return
    if address.endswith(":0"):
        raise CommandError("--workers > 1 needs a fixed port to share.")
    command.stdout.write(f"{what} on {address}: starting {workers} worker processes")
    if own_port_base is not None:
        host = address.rpartition(":")[0]
        own = ",".join(f"{host}:{own_port_base + index}" for index in range(workers))
        command.stdout.write(
            f"worker ports: {own} (spread calls over them: a round_robin client, "
            "or nginx grpc_pass to an upstream of them)"
        )
    status = supervise(
        address,
        processes=workers,
        own_port_base=own_port_base,
        on_ready=lambda pids: command.stdout.write(f"worker pids: {pids}"),
        **server_options,
    )
    if status:
        raise CommandError(f"{what} workers did not stop cleanly.", returncode=status)
