"""``make capacity``'s measurement, small: a monolithic and a microservices stack
on a private MariaDB primary + replica and a private Redis
(``bench.capacity.measure``), a few requests of each operation, so the counters
it reads keep meaning what docs/CAPACITY.md says they mean. It needs no
``DATABASE_URL`` of its own but runs with the live tests (it starts real servers)."""

from typing import Any

import pytest

from bench import capacity

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def inputs() -> dict[str, Any]:
    # A tenth of the busy measurements: enough to read a CPU per statement and command.
    return capacity.measure(["monolithic", "microservices"], requests=10, quiet=2.0, under_load=0.1)


def test_reads_go_to_the_replica_and_the_cache(inputs: dict[str, Any]) -> None:
    for protocol in capacity.PROTOCOLS:
        measured = inputs["modes"]["monolithic"][protocol]
        warm, cold = measured[capacity.GET], measured[capacity.GET_COLD]
        # A warm get-by-id is answered by Redis alone: caller and target, in one
        # MGET (users.repository's read-ahead).
        assert warm["db"]["replica"]["Questions"] < 0.5, protocol
        assert warm["db"]["primary"]["Questions"] < 0.5, protocol
        assert 0.9 <= warm["redis"]["commands"] <= 1.1, protocol
        # A cold one reads the replica, never the primary.
        assert cold["db"]["replica"]["Com_select"] >= 1, protocol
        assert cold["db"]["primary"]["Questions"] < 0.5, protocol
        assert cold["redis"]["keyspace_misses"] >= 0.9, protocol
        assert measured[capacity.LIST]["db"]["replica"]["Com_select"] >= 1, protocol


def test_writes_go_to_the_primary_and_hashing_costs_cpu(inputs: dict[str, Any]) -> None:
    for protocol in capacity.PROTOCOLS:
        measured = inputs["modes"]["monolithic"][protocol]
        assert measured[capacity.CREATE]["db"]["primary"]["Com_insert"] >= 1, protocol
        assert measured[capacity.UPDATE]["db"]["primary"]["Com_update"] >= 1, protocol
        assert measured[capacity.UPDATE]["db"]["replica"]["Questions"] < 0.5, protocol
        # Argon2id (m = 19 MiB, t = 2) is milliseconds of CPU where a warm read is not.
        login = measured[capacity.LOGIN]["cpu_ms"][protocol]
        assert login > 3 * measured[capacity.GET]["cpu_ms"][protocol], protocol


def test_shared_servers_are_measured_busy_and_the_document_renders(
    inputs: dict[str, Any],
) -> None:
    assert inputs["redis_under_load"]["cpu_us_per_command"] > 0
    assert inputs["replica_under_load"]["statements"] > 1000
    assert inputs["replica_under_load"]["distinct_statements"] >= 2
    assert set(inputs["modes"]["monolithic"]["rss_mib"]) == {"rest", "grpc"}
    text = capacity.render(inputs)
    assert "## Monolithic mode" in text
    assert "**Saturates first:" in text


def test_microservices_each_service_reads_and_writes_its_own_database(
    inputs: dict[str, Any],
) -> None:
    def statements(measured: Any, op: str, server: str, service: str) -> float:
        return float(measured[op]["statements_by_service"][server][service])

    def sent(measured: Any, op: str, server: str, service: str) -> float:
        """At least what the requests sent (the background not taken off)."""
        return float(measured[op]["statements_by_service_gross"][server][service])

    for protocol in capacity.PROTOCOLS:
        measured = inputs["modes"]["microservices"][protocol]

        # The users service's reads reach its database's replica (DATABASE_REPLICA_URLS
        # of its own), its writes its primary; login also writes the auth database.
        assert sent(measured, capacity.GET_COLD, "replica", "users") >= 1, protocol
        assert statements(measured, capacity.GET_COLD, "primary", "users") < 0.5, protocol
        assert sent(measured, capacity.LIST, "replica", "users") >= 1, protocol
        assert sent(measured, capacity.UPDATE, "primary", "users") >= 1, protocol
        assert sent(measured, capacity.CREATE, "primary", "users") >= 1, protocol
        assert sent(measured, capacity.LOGIN, "primary", "auth") >= 1, protocol
        assert statements(measured, capacity.UPDATE, "primary", "auth") < 0.5, protocol
        # Each service's counts add up to the server's (nothing is counted twice).
        for op in capacity.OPERATIONS:
            for server in ("primary", "replica"):
                total = sum(statements(measured, op, server, s) for s in capacity.SERVICES)
                assert total <= measured[op]["db"][server]["Questions"] + 0.5, (protocol, op)
        # Every request crosses the gateway; the Argon2id verify of a login is the
        # users service's (it holds the credentials), behind the auth service.
        for op in capacity.OPERATIONS:
            assert measured[op]["cpu_ms"]["gateway"] > 0, (protocol, op)
        login = measured[capacity.LOGIN]["cpu_ms"]
        assert login["users-internal"] > 3 * measured[capacity.GET]["cpu_ms"][f"users-{protocol}"]
        assert login[f"auth-{protocol}"] > 0.5, protocol


def test_microservices_renders_per_deployment(inputs: dict[str, Any]) -> None:
    assert set(inputs["modes"]["microservices"]["rss_mib"]) == set(capacity.TIERS["microservices"])
    pods = capacity.derive(inputs, capacity.Assumptions(), "microservices", 10_000).pods()
    assert set(pods) == set(capacity.TIERS["microservices"])
    text = capacity.render(inputs)
    assert "## Microservices mode" in text
    assert "| users primary |" in text
