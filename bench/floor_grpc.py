"""The gRPC floor: bare grpcio, one proto-free method (bytes in, bytes out).

No django-grpc-framework, no interceptors, no protobuf. Run as
``python -m bench.floor_grpc ADDR:PORT --workers N --max-workers M``: like
``grpcrunserver --workers N`` it forks N processes sharing the port with
SO_REUSEPORT, each with a thread pool of M (the service's GRPC_MAX_WORKERS).
"""

import argparse
import multiprocessing
import os
import signal
import sys
from concurrent import futures

import django
import grpc
from django.core.signals import request_finished, request_started
from django.db import connections

from bench.servers import stop_on_signals

SERVICE = "bench.Floor"
METHOD = f"/{SERVICE}/GetUser"


def get_user(request: bytes, context: grpc.ServicerContext) -> bytes:
    from bench.floor_db import user_row_json

    # Django's own request boundaries, exactly as WSGIHandler sends them around
    # the REST floor's view (and the service's ErrorInterceptor around each RPC):
    # they are what makes persistent connections health-checked and recycled.
    request_started.send(sender=None)
    try:
        body = user_row_json(request.decode())
    finally:
        request_finished.send(sender=None)
    if body is None:
        context.abort(grpc.StatusCode.NOT_FOUND, "Not found.")
    return body


def _serve(address: str, max_workers: int) -> None:
    stop = stop_on_signals()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        options=[("grpc.so_reuseport", 1)],
    )
    handler = grpc.method_handlers_generic_handler(
        SERVICE, {"GetUser": grpc.unary_unary_rpc_method_handler(get_user)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(address)
    server.start()
    print(f"floor ready pid {os.getpid()}", flush=True)
    while not stop.wait(timeout=1.0):
        pass
    server.stop(1).wait()
    connections.close_all()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("address")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-workers", type=int, default=10)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.floor_settings")
    django.setup()
    # Fork before grpc's core starts in this process, as gRPC requires.
    context = multiprocessing.get_context("fork")
    children = [
        context.Process(target=_serve, args=(args.address, args.max_workers))
        for _ in range(args.workers)
    ]
    stop = stop_on_signals()
    for child in children:
        child.start()
    while not stop.wait(timeout=0.5):
        if not all(child.is_alive() for child in children):
            stop.set()
    for child in children:
        if child.is_alive() and child.pid is not None:
            os.kill(child.pid, signal.SIGTERM)
    status = 0
    for child in children:
        child.join(timeout=5)
        if child.is_alive():
            child.kill()
            child.join()
        if child.exitcode not in (0, -signal.SIGTERM):
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
