"""The capacity arithmetic (bench/capacity.py) on fixed inputs, worked out by hand
here, and the committed docs/CAPACITY.md against the inputs it says it came from."""

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from bench import capacity

# Per request, the same over REST and gRPC (so the protocol split does not
# matter for the shared servers): CPU ms of the front end, primary and replica
# statements, Redis commands, and the MariaDB primary's and Redis's own CPU ms.
FIXED = {
    capacity.GET: (1.0, 0, 0, 2, 0.0, 0.02),
    capacity.GET_COLD: (3.0, 0, 2, 4, 0.0, 0.02),
    capacity.LIST: (2.0, 0, 7, 2, 0.0, 0.02),
    capacity.LOGIN: (30.0, 4, 0, 7, 1.0, 0.02),
    capacity.UPDATE: (5.0, 12, 0, 9, 1.0, 0.02),
    capacity.CREATE: (35.0, 11, 0, 14, 1.0, 0.02),
}


def _measurement(
    cpu: float,
    primary: float,
    replica: float,
    commands: float,
    db_cpu: float,
    redis_cpu: float,
    protocol: str,
    tiers: dict[str, float] | None = None,
) -> dict[str, Any]:
    """One operation's figures; ``tiers``: every tier's CPU ms (default: the
    front end of ``protocol`` ``cpu``, the other one's 0)."""
    counters = dict.fromkeys(capacity.MYSQL_COUNTERS, 0.0)
    if tiers is None:
        tiers = {**dict.fromkeys(capacity.PROTOCOLS, 0.0), protocol: cpu}
    return {
        "cpu_ms": {
            **tiers,
            "mariadb_primary": db_cpu,
            "mariadb_replica": 0.01,
            "redis": redis_cpu,
        },
        "db": {
            "primary": {**counters, "Questions": primary},
            "replica": {**counters, "Questions": replica},
        },
        "redis": {"commands": commands, "keyspace_hits": 1.0, "keyspace_misses": 0.0},
        "p50_ms": 1.0,
        "requests": 100,
    }


def fixed_inputs() -> dict[str, Any]:
    return {
        "schema": capacity.SCHEMA,
        "measured": {
            "date": "2026-01-01 00:00 UTC",
            "machine": "test",
            "cores": 2,
            "requests": 100,
            "quiet_seconds": 5,
            "mariadb": "x",
            "redis": "y",
        },
        "redis_under_load": {
            "cpu_us_per_command": 10.0,
            "commands": 1000,
            "ops_per_second": 50_000,
            "clients": 32,
            "tool": "redis-benchmark",
        },
        "replica_under_load": {
            "cpu_us_per_statement": 50.0,
            "statements": 1000,
            "distinct_statements": 9,
            "clients": 16,
            "tool": "mariadb-slap",
        },
        "modes": {
            "monolithic": {
                protocol: {
                    op: _measurement(*figures, protocol=protocol) for op, figures in FIXED.items()
                }
                for protocol in capacity.PROTOCOLS
            }
        },
    }


def test_pods_per_tier_follow_from_the_inputs() -> None:
    # rest: 0.5 x (0.76 x (0.9 x 1 + 0.1 x 3) + 0.18 x 2 + 0.01 x 30 + 0.04 x 5 + 0.01 x 35)
    #     = 0.5 x 2.122 = 1.061 ms per request of the mix
    # 10k: 10.61 vCPU ÷ 0.7 = 15.2 -> 16 pods; 100k: 106.1 ÷ 0.7 = 151.6 -> 152 pods
    a = capacity.Assumptions()
    assert capacity.tier_cpu_ms(fixed_inputs(), a, "monolithic", "rest") == pytest.approx(1.061)
    assert capacity.derive(fixed_inputs(), a, "monolithic", 10_000).pods() == {
        "rest": 16,
        "grpc": 16,
    }
    assert capacity.derive(fixed_inputs(), a, "monolithic", 100_000).pods() == {
        "rest": 152,
        "grpc": 152,
    }
    # Another pod size or target changes the count: the assumptions are used.
    bigger = replace(a, pod_vcpu=2.0)
    assert capacity.derive(fixed_inputs(), bigger, "monolithic", 10_000).pods()["rest"] == 8
    # Never fewer than the HPA's floor.
    assert capacity.derive(fixed_inputs(), a, "monolithic", 10).pods() == {"rest": 2, "grpc": 2}


def test_shared_servers_and_what_saturates_first() -> None:
    d = capacity.derive(fixed_inputs(), capacity.Assumptions(), "monolithic", 10_000)
    shared = {s.name: s for s in d.shared}
    # primary: 0.01 x 4 + 0.04 x 12 + 0.01 x 11 = 0.63 statements per request
    assert shared["primary"].rate == pytest.approx(6_300)
    # Redis: 0.76 x (0.9 x 2 + 0.1 x 4) + 0.18 x 2 + 0.01 x 7 + 0.04 x 9 + 0.01 x 14 = 2.602
    assert shared["redis"].rate == pytest.approx(26_020)
    # Redis, at its CPU per command under load: 1 vCPU x 0.7 x 1000 ÷ (2.602 x 10 µs)
    # = 26 902 req/s; the primary: 16 x 0.7 x 1000 ÷ (0.06 x 1.0 ms) = 186 667 req/s.
    assert shared["redis"].capacity_rps == pytest.approx(26_902.38)
    assert shared["primary"].capacity_rps == pytest.approx(186_666.67)
    # replica: 0.76 x 0.1 x 2 + 0.18 x 7 = 1.412 statements; x 50 µs under load
    # = 0.0706 ms, + (0.01 + 0.04 + 0.01) x 0.01 ms applying the writes = 0.0712 ms:
    # 16 x 0.7 x 1000 ÷ 0.0712 = 157 303 req/s per replica.
    assert shared["replica"].rate == pytest.approx(14_120)
    assert shared["replica"].capacity_rps == pytest.approx(157_303.37)
    assert d.first_to_saturate().name == "redis"
    at_100k = {s.name: s for s in capacity.derive(fixed_inputs(), capacity.Assumptions(),
                                                    "monolithic", 100_000).shared}  # fmt: skip
    assert at_100k["redis"].servers == 4  # ⌈100 000 ÷ 26 902⌉


def test_the_document_shows_the_counts_and_the_arithmetic() -> None:
    text = capacity.render(fixed_inputs())
    assert "**16 pods**" in text
    assert "**152 pods**" in text
    assert "= 1.061 ms" in text
    # Argon2: 0.5 x (0.01 x 30 + 0.01 x 35) = 0.325 of 1.061 ms
    assert "= 1.061 ms (login + create, 2% of requests: 31%)" in text
    assert "**Saturates first: redis**, at about 26 902 req/s" in text
    assert "**6 300 statements/s**" in text
    # At a 50 % hit ratio: 0.76 x 0.5 x 2 + 0.18 x 7 = 2.02 replica statements per request.
    assert "50%: 202 000 replica statements/s" in text
    assert "list-20 sends 1.26 of the 1.41 replica statements" in text


def test_max_replicas_leave_headroom_over_the_10k_count() -> None:
    assert capacity.max_replicas(fixed_inputs(), capacity.Assumptions(), "monolithic") == {
        "rest": 24,
        "grpc": 24,
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda i: i["modes"]["monolithic"]["rest"].pop(capacity.LIST), "no monolithic / rest"),
        (
            lambda i: i["modes"]["monolithic"]["grpc"][capacity.GET]["cpu_ms"].update(grpc="x"),
            "must be a finite number",
        ),
        (lambda i: i.pop("redis_under_load"), "no redis_under_load"),
        (lambda i: i.pop("replica_under_load"), "no replica_under_load"),
    ],
)
def test_bad_inputs_are_named(change: Any, message: str) -> None:
    inputs = fixed_inputs()
    change(inputs)
    with pytest.raises(ValueError, match=message):
        capacity.render(inputs)


def test_a_mix_must_add_up() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        capacity.Assumptions(mix={capacity.GET: 0.5})


def test_the_committed_document_is_rendered_from_the_committed_inputs() -> None:
    inputs: Mapping[str, Any] = capacity.load_inputs(capacity.DOC_JSON)
    assert capacity.DOC.read_text() == capacity.render(inputs), (
        "docs/CAPACITY.md is stale: python -m bench.capacity --render docs/capacity.json"
    )


def test_runs_merge_to_the_least_cpu_and_the_most_memory() -> None:
    quiet, busy = fixed_inputs(), fixed_inputs()
    quiet["modes"]["monolithic"]["rss_mib"] = {"rest": 200.0, "grpc": 250.0}
    busy["modes"]["monolithic"]["rss_mib"] = {"rest": 260.0, "grpc": 240.0}
    for protocol in capacity.PROTOCOLS:
        for measured in busy["modes"]["monolithic"][protocol].values():
            measured["cpu_ms"] = {k: v * 2 for k, v in measured["cpu_ms"].items()}
            measured["db"]["primary"]["Questions"] += 100  # counts: the first run's
    busy["redis_under_load"]["cpu_us_per_command"] = 5.0
    busy["measured"]["date"] = "2026-01-02 00:00 UTC"
    merged = capacity.merge_runs([busy, quiet])
    rest = merged["modes"]["monolithic"]["rest"][capacity.LOGIN]
    assert rest["cpu_ms"]["rest"] == 30.0
    assert rest["db"]["primary"]["Questions"] == 104
    assert merged["redis_under_load"]["cpu_us_per_command"] == 5.0
    assert merged["modes"]["monolithic"]["rss_mib"] == {"rest": 260.0, "grpc": 250.0}
    assert merged["measured"]["runs"] == 2
    assert merged["measured"]["cpu_spread"] == 2.0
    assert "2026-01-02 00:00 UTC, 2026-01-01 00:00 UTC" in capacity.render(merged)
    # One run merges to itself.
    assert capacity.merge_runs([quiet])["modes"] == quiet["modes"]


# --- microservices mode -------------------------------------------------------------------


# Per operation, microservices' own Deployments (CPU ms, the same over REST and
# gRPC at that protocol's front end): the gateway 0.2 on every request; the users
# service's front end FIXED's figure except for login, which is the auth
# service's (4.0) and hashes in users-internal (25.0); auth-internal 0.1 on every
# request. The auth database gets 1 of login's 4 primary statements, no others.
def microservices_inputs() -> dict[str, Any]:
    inputs = fixed_inputs()
    modes: dict[str, Any] = {}
    for protocol in capacity.PROTOCOLS:
        modes[protocol] = {}
        for op, figures in FIXED.items():
            login = op == capacity.LOGIN
            tiers = dict.fromkeys(capacity.TIERS["microservices"], 0.0)
            tiers |= {"gateway": 0.2, "auth-internal": 0.1}
            tiers[f"users-{protocol}"] = 0.0 if login else figures[0]
            tiers[f"auth-{protocol}"] = 4.0 if login else 0.0
            tiers["users-internal"] = 25.0 if login else 0.0
            measured = _measurement(*figures, protocol=protocol, tiers=tiers)
            primary, replica = figures[1], figures[2]
            auth = 1.0 if login else 0.0
            measured["statements_by_service"] = {
                "primary": {"users": primary - auth, "auth": auth},
                "replica": {"users": replica, "auth": 0.0},
            }
            modes[protocol][op] = measured
    inputs["modes"]["microservices"] = modes
    return inputs


def test_microservices_pods_per_deployment_follow_from_the_inputs() -> None:
    a = capacity.Assumptions()
    inputs = microservices_inputs()
    # gateway: 0.2 ms on every request of the mix; 10k: 2.0 vCPU ÷ 0.7 -> 3; 100k: 29.
    # users-rest: 0.5 x (0.76 x 1.2 + 0.18 x 2 + 0.01 x 0 + 0.04 x 5 + 0.01 x 35)
    #   = 0.911 ms; 10k: 9.11 ÷ 0.7 = 13.01 -> 14; 100k: 130.1 -> 131.
    # users-internal: 0.01 x 25 = 0.25 ms; 10k: 2.5 ÷ 0.7 -> 4; 100k: 35.7 -> 36.
    # auth-rest: 0.5 x 0.01 x 4 = 0.02 ms; 10k: 0.2 vCPU -> the floor, 2; 100k: 2.86 -> 3.
    # auth-internal: 0.1 ms; 10k: 1.43 -> 2; 100k: 14.3 -> 15.
    assert capacity.tier_cpu_ms(inputs, a, "microservices", "users-rest") == pytest.approx(0.911)
    assert capacity.tier_cpu_ms(inputs, a, "microservices", "gateway") == pytest.approx(0.2)
    assert capacity.derive(inputs, a, "microservices", 10_000).pods() == {
        "gateway": 3,
        "users-rest": 14,
        "users-grpc": 14,
        "users-internal": 4,
        "auth-rest": 2,
        "auth-grpc": 2,
        "auth-internal": 2,
    }
    assert capacity.derive(inputs, a, "microservices", 100_000).pods() == {
        "gateway": 29,
        "users-rest": 131,
        "users-grpc": 131,
        "users-internal": 36,
        "auth-rest": 3,
        "auth-grpc": 3,
        "auth-internal": 15,
    }
    # A front end serves its protocol's share alone: CPU a REST front end logged
    # during gRPC batches (a health check) is not a gRPC request's.
    inputs["modes"]["microservices"]["grpc"][capacity.LIST]["cpu_ms"]["users-rest"] = 50.0
    assert capacity.tier_cpu_ms(inputs, a, "microservices", "users-rest") == pytest.approx(0.911)
    # Headroom: 1.5 x the 10k count.
    assert capacity.max_replicas(microservices_inputs(), a, "microservices") == {
        "gateway": 5,
        "users-rest": 21,
        "users-grpc": 21,
        "users-internal": 6,
        "auth-rest": 3,
        "auth-grpc": 3,
        "auth-internal": 3,
    }


def test_microservices_databases_are_counted_per_service() -> None:
    a = capacity.Assumptions()
    inputs = microservices_inputs()
    # users primary: 0.01 x 3 + 0.04 x 12 + 0.01 x 11 = 0.62; auth: 0.01 x 1 = 0.01.
    assert capacity.service_statements(inputs, a, "primary", "users") == pytest.approx(0.62)
    assert capacity.service_statements(inputs, a, "primary", "auth") == pytest.approx(0.01)
    assert capacity.service_statements(inputs, a, "replica", "users") == pytest.approx(1.412)
    text = capacity.render(inputs)
    assert "## Microservices mode" in text
    assert "| users primary | 0.620 | 6 200 statements/s | 62 000 statements/s | 98% |" in text
    assert "| auth primary | 0.010 | 100 statements/s | 1 000 statements/s | 2% |" in text
    assert "Nothing of the mix reads auth's replicas" in text
    # The shared servers: the same counters as the other modes, so the same wall.
    d = capacity.derive(inputs, a, "microservices", 10_000)
    assert d.first_to_saturate().name == "redis"
    assert "| microservices | 10 000 | 3 gateway + 14 users-rest" in text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # A Deployment not measured is not free: it is named, not counted as 0 pods.
        (
            lambda ops: ops["rest"][capacity.LOGIN]["cpu_ms"].pop("auth-internal"),
            "microservices rest login cpu_ms.auth-internal must be a finite number",
        ),
        (
            lambda ops: ops["grpc"][capacity.GET]["cpu_ms"].update(gateway=float("nan")),
            r"microservices\.grpc\.get-by-id\.cpu_ms\.gateway must be a finite number",
        ),
        (
            lambda ops: ops["rest"][capacity.UPDATE].pop("statements_by_service"),
            "statements_by_service.primary.users must be a finite number",
        ),
        (
            lambda ops: ops["grpc"][capacity.CREATE]["statements_by_service"]["primary"].pop(
                "auth"
            ),
            "statements_by_service.primary.auth must be a finite number",
        ),
    ],
)
def test_microservices_bad_inputs_are_named(change: Any, message: str) -> None:
    inputs = microservices_inputs()
    change(inputs["modes"]["microservices"])
    with pytest.raises(ValueError, match=message):
        capacity.render(inputs)


OVERLAY = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: rest
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: rest
spec:
  minReplicas: 2
  # About 1.5 x the pods (an older comment)
  maxReplicas: 33
  metrics: []
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: worker
spec:
  minReplicas: 1
  maxReplicas: 3
"""


def test_overlay_ceilings_are_rewritten_with_their_rule() -> None:
    sized = capacity.resize_ceilings(OVERLAY, {"rest": 19}, {"rest": 29})
    assert "  # 1.5 x 19, the pods docs/CAPACITY.md derives for 10k req/s, rounded\n" in sized
    assert "  maxReplicas: 29\n  metrics: []" in sized
    assert "older comment" not in sized
    assert "maxReplicas: 33" not in sized
    # Other autoscalers, and everything else, as they were; sizing twice changes nothing.
    assert "  minReplicas: 1\n  maxReplicas: 3\n" in sized
    assert sized.replace(sized[sized.index("  # 1.5") : sized.index("  maxReplicas: 29")], "") == (
        OVERLAY.replace("  # About 1.5 x the pods (an older comment)\n", "").replace("33", "29")
    )
    assert capacity.resize_ceilings(sized, {"rest": 19}, {"rest": 29}) == sized
    with pytest.raises(ValueError, match="the autoscaler rest has no maxReplicas"):
        capacity.resize_ceilings(
            OVERLAY.replace("  maxReplicas: 33\n", ""), {"rest": 1}, {"rest": 2}
        )


def test_a_merged_run_merges_again_as_the_runs_it_was() -> None:
    first, second, third = fixed_inputs(), fixed_inputs(), fixed_inputs()
    for index, run in enumerate((first, second, third)):
        run["measured"]["load_average"] = float(index)
    twice = capacity.merge_runs([first, second])
    thrice = capacity.merge_runs([twice, third])
    assert thrice["measured"]["runs"] == 3
    assert thrice["measured"]["load_average"] == [0.0, 1.0, 2.0]
    assert "load average 0 / 1 / 2 as it began" in capacity.render(thrice)
