"""A gRPC server or tier process's metrics port (``GRPC_METRICS_HOST``/``_PORT``)."""

import logging
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from arcana.core import metrics

logger = logging.getLogger("arcana.observe")


def serve_metrics(host: str, port: int) -> WSGIServer:
    """Serve the metrics on ``host:port`` (0: any free port) from a daemon
    thread; in multiprocess mode, every worker's summed. Raises ``OSError``
    when the port cannot be bound."""
    server, _ = start_http_server(port, addr=host, registry=metrics.exposition_registry())
    logger.info("serving metrics on %s:%d", host, server.server_port)
    return server
