"""The controller <-> service link cut for real, under load from a second
process: layered mode with the service tier (and the repository tier it
calls) inside a network namespace (tests/faults/netns.py), the controller
tier (REST server + grpcrunserver) on the host calling it at the namespace's
veth address, mutual TLS on both hops.

The namespace cannot reach the host's 127.0.0.1, so MariaDB and Redis are out
of reach in there: the repository tier holds a SQLite file, and without Redis
the stack runs as one host (``ARCANA_SINGLE_HOST=true``: counters in files
that every process, inside or out, shares through the filesystem).

Taking the namespace's end of the link down is a partition (packets vanish,
no error comes back): every call through the edge must answer 503 /
UNAVAILABLE within the internal deadline, ``/readyz`` and gRPC health must
say so, and once the link is back the same processes serve again.
"""

import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.factories import DEFAULT_PASSWORD
from tests.faults.edge import (
    DEADLINE,
    DEADLINE_MARGIN,
    EDGE_PROCESSES,
    HEALTH_INTERVAL,
    NOT_SERVING,
    SERVING,
    Load,
    health_is,
    load,
    readyz,
    readyz_is,
    unavailable_between,
)
from tests.faults.netns import Namespace, namespace
from tests.live.conftest import UNTHROTTLED
from tests.support.servers import PYTHON, Server, free_port
from tests.support.stack import (
    create_admin,
    grpc_server,
    jwt_key_pair,
    layered_envs,
    manage,
    rest_json,
    rest_server,
    server_env,
    tier_pki,
    wait_grpc_ready,
    wait_rest_ready,
    wait_tier_ready,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.live

CUT_SETTLES = 0.2  # seconds from `ip link set down` until no packet crosses

CUT_SECONDS = 3 * DEADLINE  # load looked at while the link is down


@dataclass
class Partitioned:
    netns: Namespace
    rest: Server
    grpc: Server
    tiers: list[Server]
    rest_port: int
    grpc_address: str
    admin_id: str
    admin_token: str
    admin_email: str

    def edge_pids(self) -> set[int]:
        return set(self.rest.pids()) | set(self.grpc.pids())


@pytest.fixture
def partitioned(tmp_path: Path) -> Iterator[Partitioned]:
    with ExitStack() as stack:
        netns = stack.enter_context(namespace())
        env = server_env(
            f"sqlite:///{tmp_path / 'repository.sqlite3'}",
            "",
            overrides={
                **UNTHROTTLED,
                "CACHE_DIR": str(tmp_path / "cache"),
                "GRPC_HEALTH_INTERVAL": str(HEALTH_INTERVAL),
                "LOG_LEVEL": "INFO",
            },
        )
        service_address = f"{netns.address}:{free_port()}"
        repository_address = f"127.0.0.1:{free_port()}"  # the namespace's own loopback
        envs = layered_envs(
            env,
            pki=tier_pki(tmp_path, hosts=("127.0.0.1", "localhost", netns.address)),
            jwt_keys=jwt_key_pair(),
            service_addresses=[service_address],
            repository_address=repository_address,
        )
        manage(envs["repository"], "migrate", "--noinput")
        email = f"admin-{secrets.token_hex(3)}@partition.example.com"
        create_admin(envs["repository"], email=email, name="Admin", password=DEFAULT_PASSWORD)

        tiers = [
            Server(
                f"{tier} tier in {netns.name}",
                netns.exec_argv([PYTHON, "manage.py", "tierserver", address]),
                envs[tier],
                tmp_path / f"{tier}.log",
            )
            for tier, address in (
                ("repository", repository_address),
                ("service", service_address),
            )
        ]
        rest_port, grpc_address = free_port(), f"127.0.0.1:{free_port()}"
        rest = rest_server(envs["controller"], rest_port, tmp_path / "rest.log")
        grpc = grpc_server(
            envs["controller"], grpc_address, tmp_path / "grpc.log", workers=EDGE_PROCESSES
        )
        for server in (*tiers, rest, grpc):
            stack.callback(server.stop, 5)  # before the namespace goes
            server.start()
        for server in tiers:
            wait_tier_ready(server)
        wait_rest_ready(rest, rest_port, EDGE_PROCESSES)
        wait_grpc_ready(grpc, grpc_address, EDGE_PROCESSES)
        status, body = rest_json(
            rest_port,
            "POST",
            "/api/v1/auth/login",
            {"email": email, "password": DEFAULT_PASSWORD},
        )
        assert status == 200, body
        yield Partitioned(
            netns=netns,
            rest=rest,
            grpc=grpc,
            tiers=tiers,
            rest_port=rest_port,
            grpc_address=grpc_address,
            admin_id=str(body["user"]["id"]),
            admin_token=str(body["access"]),
            admin_email=email,
        )
        for server in (*tiers, rest, grpc):
            assert "Traceback" not in server.log_text(), server.log_path


@pytest.fixture
def traffic(partitioned: Partitioned, tmp_path: Path) -> Iterator[Load]:
    with load(tmp_path / "calls.txt", partitioned) as running:
        yield running


def test_a_cut_controller_service_link_is_503_within_the_deadline_then_heals(
    partitioned: Partitioned, traffic: Load, figures: dict[str, str]
) -> None:
    pids = partitioned.edge_pids()
    assert readyz(partitioned.rest_port) == (200, {"service": "ok", "cache": "ok"})

    cut = time.monotonic()
    partitioned.netns.cut()
    to_readyz = wait_for(readyz_is(partitioned.rest_port, 503, EDGE_PROCESSES), timeout=15)
    assert readyz(partitioned.rest_port) == (503, {"service": "unavailable", "cache": "ok"})
    to_not_serving = wait_for(
        health_is(partitioned.grpc_address, NOT_SERVING, EDGE_PROCESSES), timeout=15
    )
    wait_for(lambda: traffic.after(cut + CUT_SECONDS) != [], timeout=30)
    healed = time.monotonic()
    partitioned.netns.heal()

    recovered = wait_for(traffic.serving_since(healed), timeout=60)
    to_ready = wait_for(readyz_is(partitioned.rest_port, 200, EDGE_PROCESSES), timeout=30)
    to_serving = wait_for(health_is(partitioned.grpc_address, SERVING, EDGE_PROCESSES), timeout=30)
    for server in partitioned.tiers:
        server.check_alive()
    assert partitioned.edge_pids() == pids  # nothing restarted

    calls = traffic.calls()
    # Everything answered while the link was down: 503 / UNAVAILABLE, no
    # later than the deadline (a call already past authentication when the
    # link went may add its first hop's milliseconds).
    # A call whose packets were already on the wire when the link went down can
    # still complete: judge the calls that started once the cut had settled.
    during = unavailable_between(calls, cut + CUT_SETTLES, healed)
    answered_by_then = [call for call in calls if call.finished > cut and call.started < healed]
    slowest = max(call.seconds for call in answered_by_then)
    assert slowest <= DEADLINE + DEADLINE_MARGIN, slowest
    fastest_failure = min(call.seconds for call in during)
    # A partition is noticed only by the deadline: no call fails early.
    assert fastest_failure >= DEADLINE * 0.9, fastest_failure

    figures["controller<->service link cut (netns)"] = (
        f"{len(during)} calls while cut, all 503/UNAVAILABLE in "
        f"{fastest_failure:.2f}-{slowest:.2f}s (deadline {DEADLINE:.0f} s); /readyz 503 "
        f"after {to_readyz:.2f}s, gRPC health NOT_SERVING {to_not_serving:.2f}s later; "
        f"link up: load served again after {recovered:.2f}s, /readyz 200 +{to_ready:.2f}s, "
        f"health SERVING +{to_serving:.2f}s"
    )
