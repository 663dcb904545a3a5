"""The public gRPC server's fixtures, for the calls that enter a service by gRPC."""

from tests.grpc.conftest import auth_stub, grpc_channel, grpc_server, users_stub  # noqa: F401
