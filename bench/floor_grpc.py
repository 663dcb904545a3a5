"""The gRPC floor: bare grpcio, one proto-free method (bytes in, bytes out).

No django-grpc-framework, no interceptors, no protobuf. Run as
``python -m bench.floor_grpc ADDR:PORT --workers N --max-workers M``: like
``grpcrunserver --workers N`` it forks N processes sharing the port with
SO_REUSEPORT, each with a thread pool of M (the service's GRPC_MAX_WORKERS).

``--server`` picks the grpcio server (``make bench-aio`` compares them):
``sync`` (``grpc.server``, what the service runs and the default), ``aio-pool``
(``grpc.aio.server`` running the same synchronous handler in a thread pool of
M, which is how django-grpc-framework's synchronous servicers and
interceptors would run on it) and ``aio-inline`` (an ``async`` handler making
the query on the event loop's own thread: the cheapest an asyncio server can
be, at the price of one call at a time per process).
"""

import argparse
import asyncio
import multiprocessing
import os
import signal
import sys
from concurrent import futures

import django
import grpc
from django.core.signals import request_finished, request_started
from django.db import connections

from bench.procstat import stop_on_signals

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


SERVERS = ("sync", "aio-pool", "aio-inline")


async def get_user_async(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    """``get_user`` on the event loop's thread (``aio-inline``)."""
    from bench.floor_db import user_row_json

    request_started.send(sender=None)
    try:
        body = user_row_json(request.decode())
    finally:
        request_finished.send(sender=None)
        # Django keeps connections per asyncio context, not per thread: each call
        # (a task of its own) opened one, and only closing it keeps them from
        # piling up on the server. That connection per call is the real cost of
        # the ORM in an async handler without sync_to_async.
        connections.close_all()
    if body is None:
        await context.abort(grpc.StatusCode.NOT_FOUND, "Not found.")
    return body


async def _serve_aio(address: str, max_workers: int, inline: bool) -> None:
    stop = stop_on_signals()
    server = grpc.aio.server(
        migration_thread_pool=None if inline else futures.ThreadPoolExecutor(max_workers),
        options=[("grpc.so_reuseport", 1)],
    )
    method = (
        grpc.unary_unary_rpc_method_handler(get_user_async)
        if inline
        else grpc.unary_unary_rpc_method_handler(get_user)
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"GetUser": method}),)
    )
    server.add_insecure_port(address)
    await server.start()
    print(f"floor ready pid {os.getpid()}", flush=True)
    while not stop.is_set():
        await asyncio.sleep(0.2)
    await server.stop(1)
    connections.close_all()


def _serve_any(address: str, max_workers: int, kind: str) -> None:
    if kind == "sync":
        _serve(address, max_workers)
        return
    if kind == "aio-inline":
        # The ORM refuses to run on a thread with an event loop; here that is the
        # point of the measurement (and nothing else runs on that thread).
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    asyncio.run(_serve_aio(address, max_workers, inline=kind == "aio-inline"))


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
    parser.add_argument("--server", choices=SERVERS, default="sync")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.floor_settings")
    django.setup()
    # Fork before grpc's core starts in this process, as gRPC requires.
    context = multiprocessing.get_context("fork")
    children = [
        context.Process(target=_serve_any, args=(args.address, args.max_workers, args.server))
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
