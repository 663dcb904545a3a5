"""The gRPC suite's live server, for the observability tests too."""

from tests.grpc.conftest import grpc_channel, grpc_server  # noqa: F401
