"""The microservices gateway (scripts/gateway.sh: a real nginx) in front of
real servers: the REST server (``arcana.wsgi_server``) and ``grpcrunserver``, as deployed,
on MariaDB + Redis.

Two monolithic server pairs on one database stand in for the two services,
each serving every route: the "users" pair (REST + gRPC) and the "auth"
pair. Since either could answer anything, each REST server's access log shows
which requests the gateway sent it, and stopping one pair shows which calls
depended on it. Both run as they do behind the gateway: ``NUM_PROXIES=1``,
``GRPC_NUM_PROXIES=1``. Microservices mode itself behind the gateway:
tests/live/test_make_run.py and tests/live/test_microservices_outage.py.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from protos.arcana.v1 import auth_pb2, auth_pb2_grpc, users_pb2, users_pb2_grpc
from tests.factories import DEFAULT_PASSWORD
from tests.live.conftest import UNTHROTTLED, checked_stack, live_database_url
from tests.live.flow import Admin, run_journeys
from tests.support.clients import bearer
from tests.support.gateway import Gateway, Trickle, Upstreams, running_gateway
from tests.support.proxy import TcpProxy
from tests.support.servers import Server, free_port
from tests.support.stack import LiveStack, manage, wait_grpc_ready, wait_rest_ready

BEHIND_ONE_PROXY = {
    **UNTHROTTLED,
    "NUM_PROXIES": "1",
    "GRPC_NUM_PROXIES": "1",
    # The client-address test locks an account for one client after 3 failures.
    "LOGIN_LOCKOUT_FAILURES": "3",
    # The servers' own line per request ("GET /path HTTP/1.1"): which service
    # the gateway sent a request to.
    "REST_ACCESS_LOG": "true",
}
NGINX_ID = re.compile(r"[0-9a-f]{32}")
QUICK = 1.0  # seconds: a service down is an answer at once, not a wait


@dataclass
class Deployment:
    stack: LiveStack  # its own servers are the "auth" pair
    users_rest: Server
    users_rest_port: int
    users_grpc: Server
    users_grpc_address: str
    gateway: Gateway

    @property
    def auth_rest(self) -> Server:
        return self.stack.rest

    @property
    def auth_grpc(self) -> Server:
        return self.stack.grpc


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    logs = tmp_path_factory.mktemp("gateway-live")
    with checked_stack(
        live_database_url(),
        logs,
        rest_workers=1,
        grpc_workers=1,
        env_overrides=BEHIND_ONE_PROXY,
    ) as stack:
        # The users pair serves the docs and the admin: their static files first,
        # as the image build does.
        manage(stack.setup_env, "collectstatic", "--noinput", "--verbosity", "0")
        users_rest, users_port = stack.spawn_rest(workers=2)
        users_grpc, users_address = stack.spawn_grpc(workers=1)
        upstreams = Upstreams(
            users_rest=f"127.0.0.1:{users_port}",
            auth_rest=f"127.0.0.1:{stack.rest_port}",
            users_grpc=users_address,
            auth_grpc=stack.grpc_address,
        )
        with running_gateway(upstreams, logs) as gateway:
            yield Deployment(stack, users_rest, users_port, users_grpc, users_address, gateway)


# --- clients ----------------------------------------------------------------------------------


def rest(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str = "",
    headers: dict[str, str] | None = None,
    source: str | None = None,
) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=30, source_address=(source, 0) if source else None
    )
    sent = {"Content-Type": "application/json", **(headers or {})}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=sent)
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def login(port: int, email: str, password: str, source: str | None = None) -> tuple[int, Any]:
    response, raw = rest(
        port, "POST", "/api/v1/auth/login", {"email": email, "password": password}, source=source
    )
    return response.status, json.loads(raw) if raw else None


def register(deployed: Deployment, tag: str) -> dict[str, Any]:
    email = f"{tag}-{time.monotonic_ns()}@gateway.example.com"
    response, raw = rest(
        deployed.gateway.rest_port,
        "POST",
        "/api/v1/auth/register",
        {"name": "Gateway User", "email": email, "password": DEFAULT_PASSWORD},
    )
    assert response.status == 201, raw
    user: dict[str, Any] = json.loads(raw)["user"]
    return user


def request_lines(server: Server) -> list[str]:
    """The paths of the requests a REST server logged (its access log)."""
    return re.findall(r'"[A-Z]+ (\S+) HTTP/1\.[01]"', server.log_text())


# --- routing, end to end ----------------------------------------------------------------------


def test_the_end_to_end_journeys_pass_through_the_gateway(deployed: Deployment) -> None:
    """The end-to-end suite of every mode (tests/live/flow.py), through the
    gateway's two ports; each REST request reached the service that owns it."""
    before = {name: len(request_lines(s)) for name, s in _rest_servers(deployed).items()}
    admin = Admin(email=deployed.stack.admin_email, password=deployed.stack.password)
    run_journeys(
        deployed.gateway.rest_port, deployed.gateway.grpc_address, admin, password=DEFAULT_PASSWORD
    )
    seen = {
        name: request_lines(server)[before[name] :]
        for name, server in _rest_servers(deployed).items()
    }
    seen = {name: [p for p in paths if p != "/healthz"] for name, paths in seen.items()}
    assert seen["auth"], "the auth service answered nothing"
    assert seen["users"], "the users service answered nothing"
    assert all(path.startswith("/api/v1/auth/") for path in seen["auth"]), seen["auth"]
    assert all(re.match(r"/api/v1/users(\?|/|$)", path) for path in seen["users"]), seen["users"]


def _rest_servers(deployed: Deployment) -> dict[str, Server]:
    return {"auth": deployed.auth_rest, "users": deployed.users_rest}


@pytest.mark.parametrize(
    ("path", "owner"),
    [
        ("/api/docs", "users"),
        ("/api/schema", "users"),
        ("/admin/login/", "users"),
        ("/static/admin/css/base.css", "users"),
        ("/admin", "users"),
        ("/api/v1/users", "users"),  # 401: no token
        ("/.well-known/jwks.json", "auth"),
        ("/api/v1/auth/me", "auth"),  # 401
        ("/api/v1/auth", "auth"),  # 404, the service's
    ],
)
def test_each_route_answers_as_its_service_does(
    deployed: Deployment, path: str, owner: str
) -> None:
    port = deployed.users_rest_port if owner == "users" else deployed.stack.rest_port
    direct, direct_body = rest(port, "GET", path)
    through, body = rest(deployed.gateway.rest_port, "GET", path)
    assert through.status == direct.status, (path, body[:300])
    assert through.getheader("Content-Type") == direct.getheader("Content-Type")
    if path != "/admin/login/":  # a fresh CSRF token in each page
        assert body == direct_body
    assert f"GET {path} HTTP/1.1" in _rest_servers(deployed)[owner].log_text()


def test_unknown_paths_are_json_404_without_a_service(deployed: Deployment) -> None:
    for path in ("/", "/api/v1/nothing", "/readyz", "/api/docs/"):
        response, raw = rest(deployed.gateway.rest_port, "GET", path)
        assert response.status == 404, path
        assert json.loads(raw) == {"error": "Not found.", "code": "not_found"}
        assert f"GET {path} HTTP" not in deployed.users_rest.log_text()
        assert f"GET {path} HTTP" not in deployed.auth_rest.log_text()


def test_grpc_login_at_auth_then_the_token_at_users(deployed: Deployment) -> None:
    stack = deployed.stack
    with grpc.insecure_channel(deployed.gateway.grpc_address) as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        users = users_pb2_grpc.UserServiceStub(channel)
        pair = auth.Login(
            auth_pb2.LoginRequest(email=stack.admin_email, password=stack.password), timeout=30
        )
        assert pair.user.id == stack.admin_id
        me = users.GetUser(
            users_pb2.GetUserRequest(id=stack.admin_id), metadata=bearer(pair.access), timeout=30
        )
        assert (me.id, me.email) == (stack.admin_id, stack.admin_email)
        assert auth.Me(auth_pb2.MeRequest(), metadata=bearer(pair.access), timeout=30).id == me.id
        with pytest.raises(grpc.RpcError) as refused:
            users.GetUser(users_pb2.GetUserRequest(id=stack.admin_id), timeout=30)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        (answer,) = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
        )
        listed = {service.name for service in answer.list_services_response.service}
        assert {"arcana.v1.UserService", "grpc.health.v1.Health"} <= listed


# --- request id, client address ----------------------------------------------------------------


def test_request_ids_kept_or_made_and_echoed_once(deployed: Deployment) -> None:
    port, token = deployed.gateway.rest_port, deployed.stack.admin_token
    response, _ = rest(
        port, "GET", "/api/v1/auth/me", token=token, headers={"X-Request-ID": "e2e-1"}
    )
    assert response.status == 200
    assert response.headers.get_all("X-Request-ID") == ["e2e-1"]
    for headers in ({}, {"X-Request-ID": "not valid!"}):
        response, _ = rest(
            port, "GET", f"/api/v1/users/{deployed.stack.admin_id}", token=token, headers=headers
        )
        echoed = response.headers.get_all("X-Request-ID") or []
        assert len(echoed) == 1, (headers, echoed)
        assert NGINX_ID.fullmatch(echoed[0]), (headers, echoed)

    with grpc.insecure_channel(deployed.gateway.grpc_address) as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        for sent, expected in (("e2e-grpc.2", "e2e-grpc.2"), ("not valid!", None)):
            _, call = auth.Me.with_call(
                auth_pb2.MeRequest(),
                metadata=(*bearer(token), ("x-request-id", sent)),
                timeout=30,
            )
            ids = [value for key, value in call.initial_metadata() if key == "x-request-id"]
            assert len(ids) == 1, ids
            assert ids[0] == expected if expected else NGINX_ID.fullmatch(str(ids[0])), ids


def test_the_service_sees_the_client_behind_the_gateway_rest(deployed: Deployment) -> None:
    """Failed logins lock an account per client address (3 here). Failures
    from one client, each claiming another X-Forwarded-For, lock that client
    only: the services take the address the gateway saw, not nginx's own (the
    same for every client) and not what a client wrote."""
    user = register(deployed, "rest-lock")
    port = deployed.gateway.rest_port
    for attempt in range(3):
        response, _ = rest(
            port,
            "POST",
            "/api/v1/auth/login",
            {"email": user["email"], "password": "wrong password 0000"},
            headers={"X-Forwarded-For": f"198.51.100.{attempt}"},
            source="127.0.0.31",
        )
        assert response.status == 401
    status, body = login(port, user["email"], DEFAULT_PASSWORD, source="127.0.0.31")
    assert status == 429, body
    status, body = login(port, user["email"], DEFAULT_PASSWORD, source="127.0.0.32")
    assert status == 200, body


def test_the_service_sees_the_client_behind_the_gateway_grpc(deployed: Deployment) -> None:
    """As above over gRPC: each client reaches the gateway from an address of
    its own (a relay that connects from it) and forges x-forwarded-for."""
    user = register(deployed, "grpc-lock")
    target = ("127.0.0.1", deployed.gateway.grpc_port)
    with (
        TcpProxy(target, port=free_port(), source="127.0.0.33") as locked,
        TcpProxy(target, port=free_port(), source="127.0.0.34") as other,
        grpc.insecure_channel(f"127.0.0.1:{locked.port}") as locked_channel,
        grpc.insecure_channel(f"127.0.0.1:{other.port}") as other_channel,
    ):
        attacker = auth_pb2_grpc.AuthServiceStub(locked_channel)
        for attempt in range(3):
            with pytest.raises(grpc.RpcError) as failed:
                attacker.Login(
                    auth_pb2.LoginRequest(email=user["email"], password="wrong password 0000"),
                    metadata=(("x-forwarded-for", f"198.51.100.{attempt}"),),
                    timeout=30,
                )
            assert failed.value.code() == grpc.StatusCode.UNAUTHENTICATED
        right = auth_pb2.LoginRequest(email=user["email"], password=DEFAULT_PASSWORD)
        with pytest.raises(grpc.RpcError) as locked_out:
            attacker.Login(right, timeout=30)
        assert locked_out.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        pair = auth_pb2_grpc.AuthServiceStub(other_channel).Login(right, timeout=30)
        assert pair.user.id == user["id"]


def test_the_logs_name_each_request(deployed: Deployment) -> None:
    """The gateway's access log: client, request, status, upstream, request id."""
    log = deployed.gateway.access_log()
    line = next(line for line in log.splitlines() if '"GET /api/schema HTTP/1.1"' in line)
    shape = (
        r'127\.0\.0\.1 "GET /api/schema HTTP/1\.1" \d{3} \d+ [0-9.]+ upstream=127\.0\.0\.1:\d+ id='
    )
    assert re.match(shape + r"[0-9a-f]{32}$", line), line


# --- slow clients ----------------------------------------------------------------------------


def probe(port: int, path: str, token: str = "", timeout: float = 5.0) -> float | None:
    """Seconds until ``path`` answered 200, or None if not within ``timeout``."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        response.read()
        return time.monotonic() - started if response.status == 200 else None
    except OSError:
        return None
    finally:
        conn.close()


def beside_slow_clients(port: int, token: str, paths: list[str]) -> list[float]:
    """While 200 clients trickle headers they never finish at ``port``, GET each
    of ``paths`` for 3 s: every one must answer 200 within a second; the latencies."""
    latencies: list[float | None] = []
    with Trickle(port, 200) as slow:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            latencies.extend(probe(port, path, token) for path in paths)
            time.sleep(0.1)
        assert slow.sent >= 400
    assert None not in latencies, latencies
    answered = [latency for latency in latencies if latency is not None]
    assert max(answered) < 1.0, answered
    return answered


def test_slow_clients_do_not_freeze_the_services_behind_the_gateway_or_without_it(
    deployed: Deployment, figures: dict[str, str]
) -> None:
    """200 clients trickle headers they never finish: requests through the
    gateway still answer at once, and so do requests straight at a REST
    server with the same 200 on it (granian reads requests in its Rust I/O
    loop, not in the Python threads, so slow clients hold connections, not
    workers; gunicorn froze its /healthz for 30 s under this load)."""
    gateway, token = deployed.gateway, deployed.stack.admin_token
    path = f"/api/v1/users/{deployed.stack.admin_id}"
    answered = beside_slow_clients(gateway.rest_port, token, [path, "/api/v1/auth/me"])
    figures["gateway: 200 slow clients, requests through it"] = (
        f"{len(answered)} answered, slowest {max(answered) * 1000:.0f} ms"
    )
    answered = beside_slow_clients(deployed.users_rest_port, token, [path, "/healthz"])
    figures["REST server directly: 200 slow clients, requests beside them"] = (
        f"{len(answered)} answered, slowest {max(answered) * 1000:.0f} ms"
    )


# --- a service down ------------------------------------------------------------------------------


def restart(server: Server, request: pytest.FixtureRequest) -> Server:
    """The same process again (same port and environment), stopped at the end."""
    again = Server(server.name, server.argv, server.env, server.log_path.with_suffix(".again.log"))
    request.addfinalizer(again.stop)
    again.start()
    return again


def assert_rest_unavailable(port: int, method: str, path: str, body: Any = None) -> None:
    started = time.monotonic()
    response, raw = rest(port, method, path, body)
    took = time.monotonic() - started
    assert response.status == 503, (path, raw)
    assert json.loads(raw)["code"] == "unavailable"
    assert response.getheader("Retry-After") == "1"
    assert took < QUICK, (path, took)


def assert_grpc_unavailable(call: Any, request: Any, **kwargs: Any) -> None:
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as failed:
        call(request, timeout=10, **kwargs)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - started < QUICK


def test_one_service_down_the_other_keeps_answering(
    deployed: Deployment, request: pytest.FixtureRequest
) -> None:
    """Auth down: its routes are 503 / UNAVAILABLE at once, while users'
    routes answer holders of a valid token. Then the other way round."""
    stack, gateway = deployed.stack, deployed.gateway
    port, token, me = gateway.rest_port, stack.admin_token, stack.admin_id
    credentials = {"email": stack.admin_email, "password": stack.password}
    with grpc.insecure_channel(gateway.grpc_address) as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        users = users_pb2_grpc.UserServiceStub(channel)
        login_request = auth_pb2.LoginRequest(**credentials)
        get_me = users_pb2.GetUserRequest(id=me)

        deployed.auth_rest.stop(grace=3)
        deployed.auth_grpc.stop(grace=3)
        assert_rest_unavailable(port, "POST", "/api/v1/auth/login", credentials)
        assert_rest_unavailable(port, "GET", "/.well-known/jwks.json")
        assert_grpc_unavailable(auth.Login, login_request)
        response, raw = rest(port, "GET", f"/api/v1/users/{me}", token=token)
        assert (response.status, json.loads(raw)["id"]) == (200, me)
        assert users.GetUser(get_me, metadata=bearer(token), timeout=30).id == me

        rest_again = restart(deployed.auth_rest, request)
        grpc_again = restart(deployed.auth_grpc, request)
        wait_rest_ready(rest_again, stack.rest_port, 1)
        wait_grpc_ready(grpc_again, stack.grpc_address, 1)
        assert login(port, stack.admin_email, stack.password)[0] == 200

        deployed.users_rest.stop(grace=3)
        deployed.users_grpc.stop(grace=3)
        assert_rest_unavailable(port, "GET", f"/api/v1/users/{me}")
        assert_rest_unavailable(port, "GET", "/api/schema")
        assert_grpc_unavailable(users.GetUser, get_me, metadata=bearer(token))
        status, body = login(port, stack.admin_email, stack.password)
        assert status == 200, body
        assert auth.Login(login_request, timeout=30).user.id == me
        assert auth.Me(auth_pb2.MeRequest(), metadata=bearer(token), timeout=30).id == me
