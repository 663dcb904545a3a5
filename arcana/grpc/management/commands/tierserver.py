"""``manage.py tierserver [ADDR:PORT]``: a layered-mode tier's internal gRPC server.

The service tier (``ARCANA_TIER=service``, default port 50052) serves
``arcana.internal.v1.Service``: the apps' services, called by the controller
tier. The repository tier (``ARCANA_TIER=repository``, default port 50053)
serves ``arcana.internal.v1.Repository``: the apps' repositories, called by
the service tier. Both serve gRPC health (SERVING while the tier below, or
the database, answers) and mutual TLS from ``ARCANA_INTERNAL_TLS_*``
(plaintext only with ``ARCANA_INTERNAL_INSECURE=true``). Connections are
closed after ``ARCANA_INTERNAL_MAX_CONNECTION_AGE`` (120 s) so that callers
re-resolve a ``dns:///`` name and find new replicas.

In microservices mode (``ARCANA_SERVICE=users|auth``, default port 50052) it
serves ``arcana.internal.v1.Service`` with the service's own app only: what
the other service calls (auth asks users for credentials checks, users and
new accounts; users asks auth to end a user's sessions).
"""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from arcana.grpc.management.commands.grpcrunserver import (
    add_process_arguments,
    parse_address,
    run_servers,
)

DEFAULT_PORTS = {"service": 50052, "repository": 50053}


class Command(BaseCommand):
    help = (
        "Run this layered-mode tier's internal gRPC server (ARCANA_TIER=service or "
        "repository) until SIGTERM or SIGINT, then drain in-flight calls."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "address",
            nargs="?",
            help="ADDR:PORT or PORT to listen on (default 127.0.0.1:50052 for the service "
            "tier, 127.0.0.1:50053 for the repository tier).",
        )
        add_process_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        deployment = settings.ARCANA_DEPLOYMENT
        tier = str(deployment.tier) if deployment.tier is not None else None
        if deployment.service is not None:
            tier = "service"  # a microservice's internal server serves its app's service
        if tier not in DEFAULT_PORTS:
            where = f"the {tier} tier" if tier else f"{deployment.mode} mode"
            raise CommandError(
                f"tierserver runs the service or repository tier (ARCANA_MODE=layered, "
                f"ARCANA_TIER=service|repository) or a microservice's internal server "
                f"(ARCANA_MODE=microservices), not {where}."
            )
        address = parse_address(options["address"] or f"127.0.0.1:{DEFAULT_PORTS[tier]}")
        if options["grace"] < 0:
            raise CommandError("--grace must not be negative.")
        server_options = {
            "max_workers": options["max_workers"],
            "max_message_bytes": settings.GRPC_MAX_MESSAGE_BYTES,
            "grace": options["grace"],
            "internal": tier,
            "max_connection_age": settings.ARCANA_INTERNAL_MAX_CONNECTION_AGE,
        }
        what = (
            f"{deployment.service} service's internal tier"
            if deployment.service
            else f"{tier} tier"
        )
        run_servers(self, address, options["workers"], what, server_options)
