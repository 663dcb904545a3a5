"""Microservices mode with one service down, through the gateway (issue 9):

- the auth service down: holders of a valid access token keep using the
  users API on both protocols (tokens are verified with the public key, the
  user comes from the users service itself); auth calls answer 503 /
  ``UNAVAILABLE`` at once (the gateway finds no upstream);
- the users service down: the users API answers 503 / ``UNAVAILABLE`` at
  once; the auth service stays up (its JWKS, its readiness) and its calls
  that need users (login: the credential check) answer 503 / ``UNAVAILABLE``
  within the internal deadline, not a hang.

Each test brings the service back and checks that everything works again
within ``RECOVERY`` seconds: the other service's channel to it reconnects
with a backoff of at most a second (arcana/core/internal.py), and a call
meanwhile answers 503 at once rather than wait.
"""

import http.client
import json
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest

from tests.factories import DEFAULT_PASSWORD
from tests.live.conftest import UNTHROTTLED, live_database_url, live_redis_url, server_log_problems
from tests.live.flow import GrpcApi, Outcome, RestApi, public_apis
from tests.support.stack import LiveStack, live_stack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.live

# What "at once" and "within the deadline" mean on a loaded 2-core machine.
AT_ONCE = 1.5
DEADLINE = 2.0  # ARCANA_INTERNAL_DEADLINE, set below
WITHIN_DEADLINE = DEADLINE + 1.5
RECOVERY = 5.0


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    with live_stack(
        live_database_url(),
        live_redis_url(),
        mode="microservices",
        rest_workers=1,
        grpc_workers=1,
        env_overrides={**UNTHROTTLED, "ARCANA_INTERNAL_DEADLINE": str(DEADLINE)},
        password=DEFAULT_PASSWORD,
        log_dir=tmp_path_factory.mktemp("microservices-outage-logs"),
    ) as running:
        yield running
        problems = server_log_problems(running)
    assert not problems, "server logs:\n" + "\n".join(problems[:20])


def timed(call: Callable[[], Outcome]) -> tuple[Outcome, float]:
    started = time.monotonic()
    outcome = call()
    return outcome, time.monotonic() - started


def direct_json(address: str, path: str) -> tuple[int, Any]:
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def logs_in(api: RestApi | GrpcApi, email: str, password: str) -> bool:
    return api.login(email=email, password=password).kind == "ok"


def test_with_the_auth_service_down_token_holders_keep_the_users_api(
    deployed: LiveStack,
) -> None:
    token, admin_id = deployed.admin_token, deployed.admin_id
    email, password = deployed.admin_email, deployed.password
    deployed.stop_service("auth")
    try:
        with public_apis(deployed.rest_port, deployed.grpc_address) as apis:
            for api in apis:
                assert api.get_user(token, admin_id).ok()["email"] == deployed.admin_email
                assert api.list_users(token, "admin").ok()["users"]
                login, took = timed(partial(api.login, email=email, password=password))
                assert login.kind == "unavailable", (api.name, login)
                assert took < AT_ONCE, (api.name, took)
        # The users service itself is ready: its peer only shows as degraded.
        status, body = direct_json(deployed.tiers["users"][0].address, "/readyz")
        assert (status, body["checks"]["auth service"]) == (200, "degraded")
    finally:
        deployed.restart_service("auth")
    with public_apis(deployed.rest_port, deployed.grpc_address) as apis:
        for api in apis:
            api.login(email=email, password=password).ok()


def test_with_the_users_service_down_auth_stays_up_and_answers_quickly(
    deployed: LiveStack,
) -> None:
    token, admin_id = deployed.admin_token, deployed.admin_id
    email, password = deployed.admin_email, deployed.password
    deployed.stop_service("users")
    try:
        with public_apis(deployed.rest_port, deployed.grpc_address) as apis:
            for api in apis:
                lookup, took = timed(partial(api.get_user, token, admin_id))
                assert lookup.kind == "unavailable", (api.name, lookup)
                assert took < AT_ONCE, (api.name, took)
                login, took = timed(partial(api.login, email=email, password=password))
                assert login.kind == "unavailable", (api.name, login)
                assert took < WITHIN_DEADLINE, (api.name, took)
        status, jwks = deployed.rest_json("GET", "/.well-known/jwks.json")
        assert status == 200
        assert jwks["keys"]
        status, body = direct_json(deployed.tiers["auth"][0].address, "/readyz")
        assert (status, body["checks"]["users service"]) == (200, "degraded")
    finally:
        deployed.restart_service("users")
    with public_apis(deployed.rest_port, deployed.grpc_address) as apis:
        for api in apis:
            assert api.get_user(token, admin_id).ok()["id"] == admin_id
            # Auth's channel to users may still be in its (at most 1 s) backoff.
            wait_for(partial(logs_in, api, email, password), RECOVERY)
