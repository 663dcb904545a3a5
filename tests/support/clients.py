"""Small clients for live tests: REST over http.client, gRPC stubs, and
"everyone at once" (a barrier, so the calls really overlap)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc

from protos.arcana.v1 import auth_pb2_grpc, users_pb2_grpc
from tests.support.stack import LiveStack

T = TypeVar("T")
# Statuses a server may answer a race with; INTERNAL/UNKNOWN and 5xx never.
SERVER_FAULTS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


def all_at_once(calls: list[Callable[[], T]], timeout: float = 120) -> list[T]:
    """Run every call on its own thread, released together."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [future.result(timeout=timeout) for future in futures]


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


class Grpc:
    """Stubs on one channel to the stack's grpcrunserver."""

    def __init__(self, stack: LiveStack) -> None:
        self.channel = grpc.insecure_channel(stack.grpc_address)
        self.users = users_pb2_grpc.UserServiceStub(self.channel)
        self.auth = auth_pb2_grpc.AuthServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()


def rpc(call: Callable[..., Any], request: Any, **kwargs: Any) -> tuple[grpc.StatusCode, Any]:
    """(status, reply or None): failures become their status instead of raising."""
    try:
        return grpc.StatusCode.OK, call(request, timeout=60, **kwargs)
    except grpc.RpcError as exc:
        return exc.code(), None
