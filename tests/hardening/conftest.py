"""The real in-process gRPC server and channel of tests/grpc, for the fuzzers here."""

from tests.grpc.conftest import grpc_channel, grpc_server

__all__ = ["grpc_channel", "grpc_server"]
