"""What the fuzzers here share: the real in-process gRPC server and channel of
tests/grpc, and the hypothesis settings every fuzzer runs with."""

from hypothesis import HealthCheck, Phase, settings

from tests.grpc.conftest import grpc_channel, grpc_server

__all__ = ["FUZZ_SETTINGS", "grpc_channel", "grpc_server"]

# Derandomized and without an example database, so CI sends the same requests on
# every run. Each fuzzer adds its own max_examples.
FUZZ_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    # The database fixtures are function scoped on purpose: rows written by one
    # example (registrations, updates, deletions) are there for the next, as in
    # real traffic.
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    print_blob=False,
)
