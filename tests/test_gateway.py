"""The microservices gateway (docker/nginx/arcana.conf.template) on a real
nginx, started by scripts/gateway.sh, in front of stub upstreams that echo
who they are and what they were sent: one REST and one gRPC stub for the
users service, the same for the auth service, so every answer says which
upstream served it. The real services behind it: tests/live/test_gateway.py.

Also: the Kubernetes overlay's copy is what the template makes, and the
script refuses a missing or malformed variable before nginx starts.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from scripts import gateway as renderer
from tests.support.gateway import (
    Gateway,
    Trickle,
    Upstreams,
    gateway_env,
    nginx_binary,
    run_script,
    running_gateway,
)
from tests.support.servers import Server, free_port, http_ok
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
NGINX_ID = re.compile(r"[0-9a-f]{32}")  # nginx's $request_id


# --- stub upstreams ---------------------------------------------------------------------


class RestStub:
    """An HTTP/1.1 server answering every request with JSON: its name, the
    request line and headers it got. Echoes X-Request-ID as the services do."""

    def __init__(self, name: str) -> None:
        stub = self
        self.name = name
        self.requests = 0
        self.connections = 0
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with stub._lock:
                    stub.connections += 1

            def answer(self) -> None:
                with stub._lock:
                    stub.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                body = json.dumps(
                    {
                        "upstream": stub.name,
                        "method": self.command,
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Request-ID", self.headers.get("X-Request-ID", "none"))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Echo(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    def __init__(self, name: str) -> None:
        self.name = name

    def service(self, details: grpc.HandlerCallDetails) -> Any:
        method = details.method

        def behaviour(request: bytes, context: grpc.ServicerContext) -> bytes:
            metadata = dict(context.invocation_metadata())
            context.send_initial_metadata((("x-request-id", metadata.get("x-request-id", "none")),))
            return json.dumps(
                {"upstream": self.name, "method": method, "metadata": metadata}
            ).encode()

        return grpc.unary_unary_rpc_method_handler(behaviour)


class GrpcStub:
    """A gRPC server answering every method with JSON bytes: its name, the
    method and the metadata it got."""

    def __init__(self, name: str) -> None:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers((_Echo(name),))
        port = free_port()
        self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.address = f"127.0.0.1:{port}"
        self.server.start()

    def close(self) -> None:
        self.server.stop(grace=None)


def dead_address() -> str:
    """A port nothing listens on (a service whose processes are all down)."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def stubs() -> Iterator[dict[str, Any]]:
    made: dict[str, Any] = {
        "users_rest": RestStub("users"),
        "auth_rest": RestStub("auth"),
        "users_grpc": GrpcStub("users"),
        "auth_grpc": GrpcStub("auth"),
    }
    yield made
    for stub in made.values():
        stub.close()


def upstreams_of(stubs: dict[str, Any], *, down: str = "") -> Upstreams:
    """The stubs' addresses; ``down``: "users" or "auth" gets dead ports instead."""
    return Upstreams(
        **{
            key: dead_address() if key.startswith(f"{down}_") and down else stub.address
            for key, stub in stubs.items()
        }
    )


@pytest.fixture(scope="module")
def gateway(stubs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(upstreams_of(stubs), tmp_path_factory.mktemp("gateway")) as running:
        yield running


# --- clients ----------------------------------------------------------------------------


def rest(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    source: str | None = None,
) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=10, source_address=(source, 0) if source else None
    )
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def call(
    address: str, method: str, metadata: tuple[tuple[str, str], ...] = ()
) -> tuple[dict[str, Any], dict[str, str]]:
    """(the stub's JSON answer, initial metadata) of a raw unary call."""
    with grpc.insecure_channel(address) as channel:
        reply, done = channel.unary_unary(method, None, None).with_call(
            b"", timeout=5, metadata=metadata
        )
    return json.loads(reply), {key: str(value) for key, value in done.initial_metadata()}


def call_error(address: str, method: str, metadata: tuple[tuple[str, str], ...] = ()) -> Any:
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as failed:
        channel.unary_unary(method, None, None)(b"", timeout=5, metadata=metadata)
    return failed.value


# --- routes -----------------------------------------------------------------------------

REST_ROUTES = [
    ("POST", "/api/v1/auth/register", "auth"),
    ("POST", "/api/v1/auth/login", "auth"),
    ("GET", "/api/v1/auth/me", "auth"),
    ("DELETE", "/api/v1/auth/sessions/7f0c", "auth"),
    ("GET", "/.well-known/jwks.json", "auth"),
    ("GET", "/api/v1/users?page=0&size=10", "users"),
    ("GET", "/api/v1/users/2b1e-41", "users"),
    ("PATCH", "/api/v1/users/2b1e-41", "users"),
    ("GET", "/api/docs", "users"),
    ("GET", "/api/schema", "users"),
    ("GET", "/admin/", "users"),
    ("POST", "/admin/login/?next=/admin/", "users"),
    ("GET", "/static/admin/css/base.css", "users"),
    # A prefix without its slash: the service's answer (as in the other
    # modes), not a redirect of nginx's.
    ("GET", "/api/v1/auth", "auth"),
    ("GET", "/admin", "users"),
    ("GET", "/static", "users"),
]


@pytest.mark.parametrize(("method", "path", "upstream"), REST_ROUTES)
def test_every_rest_route_reaches_its_service(
    gateway: Gateway, method: str, path: str, upstream: str
) -> None:
    body = b'{"a": 1}' if method in ("POST", "PATCH") else None
    response, raw = rest(
        gateway.rest_port, method, path, {"Content-Type": "application/json"}, body
    )
    assert response.status == 200, raw
    seen = json.loads(raw)
    assert (seen["upstream"], seen["method"], seen["path"]) == (upstream, method, path)


NOT_ROUTED = [
    "/",
    "/api/v1/",
    "/api/v1/usersx",
    "/api/v1/other/thing",
    "/api/docs/",  # trailing slashes are 404, as in the other modes
    "/api/schema/",
    "/.well-known/openid-configuration",
    "/readyz",  # each service's readiness is its orchestrator's, not the public's
    "/metrics",  # each service's metrics are its scraper's
    "/metrics/",
]


@pytest.mark.parametrize("path", NOT_ROUTED)
def test_unknown_paths_are_the_gateways_json_404(
    gateway: Gateway, stubs: dict[str, Any], path: str
) -> None:
    before = stubs["users_rest"].requests + stubs["auth_rest"].requests
    response, raw = rest(gateway.rest_port, "GET", path)
    assert response.status == 404
    assert response.getheader("Content-Type") == "application/json"
    assert json.loads(raw) == {"error": "Not found.", "code": "not_found"}
    assert stubs["users_rest"].requests + stubs["auth_rest"].requests == before


def test_the_gateways_own_health(gateway: Gateway, stubs: dict[str, Any]) -> None:
    before = stubs["users_rest"].requests + stubs["auth_rest"].requests
    response, raw = rest(gateway.rest_port, "GET", "/healthz")
    assert (response.status, json.loads(raw)) == (200, {"status": "ok"})
    assert stubs["users_rest"].requests + stubs["auth_rest"].requests == before


GRPC_ROUTES = [
    ("/arcana.v1.AuthService/Login", "auth"),
    ("/arcana.v1.AuthService/Me", "auth"),
    ("/arcana.v1.UserService/GetUser", "users"),
    ("/arcana.v1.UserService/ListUsers", "users"),
    ("/grpc.health.v1.Health/Check", "users"),
    ("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "users"),
    ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "users"),
]


@pytest.mark.parametrize(("method", "upstream"), GRPC_ROUTES)
def test_every_grpc_service_reaches_its_service(
    gateway: Gateway, method: str, upstream: str
) -> None:
    seen, _ = call(gateway.grpc_address, method)
    assert (seen["upstream"], seen["method"]) == (upstream, method)


@pytest.mark.parametrize(
    "method",
    [
        "/arcana.v1.Nothing/Call",
        "/arcana.v1.AuthServiceX/Login",
        # Internal RPCs are never exposed at the edge.
        "/arcana.internal.v1.Service/Invoke",
        "/arcana.internal.v1.Repository/Invoke",
    ],
)
def test_an_unknown_grpc_service_is_unimplemented(gateway: Gateway, method: str) -> None:
    error = call_error(gateway.grpc_address, method)
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert error.details() == "unknown service"


# --- request id, client address ----------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (None, False),
        ("client-id_1.2:3", True),
        ("x" * 64, True),
        ("x" * 65, False),  # too long for the services: nginx's own instead
        ("bad id", False),
    ],
)
def test_rest_request_id_added_or_kept_and_echoed_once(
    gateway: Gateway, sent: str | None, kept: bool
) -> None:
    headers = {"X-Request-ID": sent} if sent is not None else {}
    response, raw = rest(gateway.rest_port, "GET", "/api/v1/users", headers)
    forwarded = json.loads(raw)["headers"]["x-request-id"]
    if kept:
        assert forwarded == sent
    else:
        assert NGINX_ID.fullmatch(forwarded), forwarded
    assert response.headers.get_all("X-Request-ID") == [forwarded]
    # nginx's own answers carry one too.
    for path in ("/nowhere", "/healthz"):
        own, _ = rest(gateway.rest_port, "GET", path, headers)
        echoed = own.headers.get_all("X-Request-ID") or []
        assert len(echoed) == 1, path
        assert echoed[0] == sent if kept else NGINX_ID.fullmatch(echoed[0]), (path, echoed)


@pytest.mark.parametrize(("sent", "kept"), [(None, False), ("grpc-id.42", True), ("bad id", False)])
def test_grpc_request_id_added_or_kept_and_echoed(
    gateway: Gateway, sent: str | None, kept: bool
) -> None:
    metadata = (("x-request-id", sent),) if sent is not None else ()
    seen, initial = call(gateway.grpc_address, "/arcana.v1.UserService/GetUser", metadata)
    forwarded = seen["metadata"]["x-request-id"]
    if kept:
        assert forwarded == sent
    else:
        assert NGINX_ID.fullmatch(forwarded), forwarded
    assert initial["x-request-id"] == forwarded
    error = call_error(gateway.grpc_address, "/arcana.v1.Nothing/Call", metadata)
    own = dict(error.initial_metadata() or ()) | dict(error.trailing_metadata() or ())
    assert own["x-request-id"] == sent if kept else NGINX_ID.fullmatch(own["x-request-id"])


def test_rest_forwarded_headers(gateway: Gateway) -> None:
    # The client's own X-Forwarded-For is kept to the left; the address nginx saw
    # is appended, and that last entry is the one the services believe (one proxy).
    _, raw = rest(
        gateway.rest_port,
        "GET",
        "/api/v1/auth/me",
        {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "Host": "api.example"},
        source="127.0.0.23",
    )
    headers = json.loads(raw)["headers"]
    assert headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.23"
    # The gateway is the edge here (FORWARDED_PROTO=$scheme): a client's claim is not passed on.
    assert headers["x-forwarded-proto"] == "http"
    assert headers["host"] == "api.example"
    _, raw = rest(gateway.rest_port, "GET", "/api/v1/auth/me", source="127.0.0.24")
    assert json.loads(raw)["headers"]["x-forwarded-for"] == "127.0.0.24"


def test_grpc_forwarded_for(gateway: Gateway) -> None:
    seen, _ = call(
        gateway.grpc_address, "/arcana.v1.AuthService/Login", (("x-forwarded-for", "203.0.113.9"),)
    )
    assert seen["metadata"]["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    seen, _ = call(gateway.grpc_address, "/arcana.v1.AuthService/Login")
    assert seen["metadata"]["x-forwarded-for"] == "127.0.0.1"


# --- a service down -------------------------------------------------------------------------


@pytest.mark.parametrize("down", ["users", "auth"])
def test_a_service_down_is_503_or_unavailable_at_once_and_the_other_answers(
    stubs: dict[str, Any], tmp_path: Path, down: str
) -> None:
    with running_gateway(upstreams_of(stubs, down=down), tmp_path, name=f"{down}-down") as gw:
        for method, path, upstream in REST_ROUTES:
            started = time.monotonic()
            response, raw = rest(gw.rest_port, method, path)
            took = time.monotonic() - started
            if upstream != down:
                assert (response.status, json.loads(raw)["upstream"]) == (200, upstream), path
                continue
            assert response.status == 503, path
            assert json.loads(raw) == {
                "error": "The service is temporarily unavailable; try again shortly.",
                "code": "unavailable",
            }
            assert response.getheader("Retry-After") == "1"
            assert NGINX_ID.fullmatch(response.getheader("X-Request-ID") or "")
            assert took < 1.0, (path, took)
        for method, upstream in GRPC_ROUTES:
            if upstream != down:
                assert call(gw.grpc_address, method)[0]["upstream"] == upstream
                continue
            started = time.monotonic()
            error = call_error(gw.grpc_address, method)
            assert error.code() == grpc.StatusCode.UNAVAILABLE, method
            assert time.monotonic() - started < 1.0, method


def test_an_oversized_body_is_refused_as_json_before_any_service(
    gateway: Gateway, stubs: dict[str, Any]
) -> None:
    before = stubs["auth_rest"].requests
    with socket.create_connection(("127.0.0.1", gateway.rest_port), timeout=5) as sock:
        # The headers announce 2 MB; the gateway answers without waiting for them.
        sock.sendall(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2000000\r\n\r\n"
        )
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 413
        assert json.loads(response.read())["code"] == "request_too_large"
    assert stubs["auth_rest"].requests == before


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"GET /api/v1/users HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n", 400),
        (b"GET /api/v1/users/" + b"a" * 40000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /api/v1/users HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n", 400),
    ],
    ids=["header-too-large", "uri-too-long", "bad-content-length"],
)
def test_requests_nginx_refuses_get_json_errors(
    gateway: Gateway, stubs: dict[str, Any], request_head: bytes, status: int
) -> None:
    before = stubs["users_rest"].requests
    with socket.create_connection(("127.0.0.1", gateway.rest_port), timeout=5) as sock:
        sock.sendall(request_head)
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == status
        assert json.loads(response.read()) == {"error": "Bad request.", "code": "bad_request"}
    assert stubs["users_rest"].requests == before


# --- slow clients ---------------------------------------------------------------------------


def test_slow_clients_wait_at_the_gateway_not_at_the_service(
    gateway: Gateway, stubs: dict[str, Any], figures: dict[str, str]
) -> None:
    """200 clients trickle the headers of a request they never finish (a
    slowloris) while others are served at once; the service never hears of them."""
    users = stubs["users_rest"]
    before = (users.requests, users.connections)
    latencies = []
    with Trickle(gateway.rest_port, 200, interval=0.5) as slow:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            started = time.monotonic()
            response, raw = rest(gateway.rest_port, "GET", "/api/v1/users/1")
            latencies.append(time.monotonic() - started)
            assert (response.status, json.loads(raw)["upstream"]) == (200, "users")
            time.sleep(0.1)
        assert slow.sent >= 200  # the trickle really went on meanwhile
    assert max(latencies) < 0.5, latencies
    assert users.requests - before[0] == len(latencies)
    # nginx reuses its connections to the service (keepalive): far fewer than requests.
    assert users.connections - before[1] <= 4
    figures["gateway under 200 slow clients (stubs)"] = (
        f"{len(latencies)} requests, slowest {max(latencies) * 1000:.0f} ms"
    )


# --- the script: render, check, refuse --------------------------------------------------------


def good_env(tmp_path: Path) -> dict[str, str]:
    upstreams = Upstreams("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4")
    return gateway_env(upstreams, free_port(), free_port(), tmp_path / "nginx")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"AUTH_REST_UPSTREAM": ""}, "gateway: AUTH_REST_UPSTREAM not set"),
        ({"USERS_GRPC_UPSTREAM": "users-grpc"}, "gateway: USERS_GRPC_UPSTREAM must be host:port"),
        ({"USERS_REST_UPSTREAM": "a:99999"}, "gateway: USERS_REST_UPSTREAM must be host:port"),
        ({"AUTH_GRPC_UPSTREAM": "x:1; include /etc/passwd"}, "gateway: AUTH_GRPC_UPSTREAM must be"),
        ({"REST_PORT": "eighty"}, "gateway: REST_PORT must be a port or address:port"),
        ({"FORWARDED_PROTO": "${scheme}"}, "gateway: FORWARDED_PROTO must be"),
        ({"GATEWAY_WORKERS": "0"}, "gateway: GATEWAY_WORKERS must be a number"),
    ],
)
def test_the_script_refuses_a_bad_variable_in_one_line(
    tmp_path: Path, change: dict[str, str], message: str
) -> None:
    env = good_env(tmp_path) | change
    result = run_script(env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(message), lines[0]
    assert not (tmp_path / "nginx" / "nginx.conf").exists()


def test_the_script_reports_what_nginx_refuses(tmp_path: Path) -> None:
    # Well formed, but a service name that does not resolve: nginx -t says no.
    env = good_env(tmp_path) | {"AUTH_REST_UPSTREAM": "auth-rest.invalid:8000"}
    result = run_script(env)
    assert result.returncode == 1
    assert "[emerg]" in result.stderr
    assert 'host not found in upstream "auth-rest.invalid:8000"' in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("gateway: nginx -t refused")


def test_the_local_config_is_valid_nginx(tmp_path: Path) -> None:
    env = good_env(tmp_path) | {"FORWARDED_PROTO": "$scheme"}
    main = renderer.render_local(tmp_path / "nginx", env)
    text = (tmp_path / "nginx" / "arcana.conf").read_text()
    assert "${" not in text
    assert f"server {env['USERS_REST_UPSTREAM']};" in text
    result = run_nginx_check(main, tmp_path)
    assert result.returncode == 0, result.stderr


def run_nginx_check(config: Path, prefix: Path) -> Any:
    return subprocess.run(
        [nginx_binary(), "-t", "-q", "-e", "stderr", "-p", f"{prefix}/", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# --- one template: compose, Kubernetes ---------------------------------------------------------


def test_the_kubernetes_copy_is_what_the_template_makes() -> None:
    committed = renderer.K8S_CONFIG.read_text()
    assert committed == renderer.k8s_config(), "stale: run python3 scripts/gateway.py k8s"
    # and so it has the template's routes, on the overlay's headless Services
    for location in re.findall(r"^\s*location (.+?) \{", renderer.TEMPLATE.read_text(), re.M):
        assert f"location {location} {{" in committed
    assert committed.count(" resolve;") == 4


def test_the_kubernetes_copy_is_valid_nginx(tmp_path: Path) -> None:
    """What this nginx (1.22) can check of it: the cluster's names become
    loopback and "resolve" (1.27.3+) goes; everything else is as rendered."""
    text = renderer.k8s_config()
    text = re.sub(r"[a-z-]+\.arcana\.svc\.cluster\.local", "127.0.0.1", text)
    text = text.replace(" resolve;", ";").replace(
        "kube-dns.kube-system.svc.cluster.local", "127.0.0.1"
    )
    text = text.replace("/tmp/", f"{tmp_path}/")  # noqa: S108  (the copy's paths, moved)
    text = re.sub(r"listen (\d+)", lambda m: f"listen 127.0.0.1:{free_port()}", text)
    config = tmp_path / "nginx.conf"
    config.write_text(text)
    result = run_nginx_check(config, tmp_path)
    assert result.returncode == 0, result.stderr


def test_the_check_command_finds_a_stale_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = tmp_path / "nginx.conf"
    stale.write_text(renderer.k8s_config().replace("location /admin/", "location /adminx/"))
    monkeypatch.setattr(renderer, "K8S_CONFIG", stale)
    monkeypatch.setattr(renderer, "ROOT", tmp_path)
    assert renderer.main(["k8s", "--check"]) == 1
    assert renderer.main(["k8s"]) == 0
    assert renderer.main(["k8s", "--check"]) == 0


def test_compose_sets_every_variable_of_the_template() -> None:
    compose = yaml.safe_load((ROOT / "docker" / "compose.microservices.yml").read_text())
    services = compose["services"]
    env = {k: str(v).replace("$$", "$") for k, v in services["gateway"]["environment"].items()}
    assert renderer.template_variables() == set(renderer.VARIABLES)
    assert set(renderer.VARIABLES) <= set(env)
    renderer.render_template(env)  # every value passes the renderer's checks
    assert env["FORWARDED_PROTO"] == "$scheme"
    assert (env["REST_PORT"], env["GRPC_PORT"]) == ("8000", "50051")
    for variable, role in [
        ("USERS_REST_UPSTREAM", "rest"),
        ("AUTH_REST_UPSTREAM", "rest"),
        ("USERS_GRPC_UPSTREAM", "grpc"),
        ("AUTH_GRPC_UPSTREAM", "grpc"),
    ]:
        host, port = env[variable].split(":")
        assert host == f"{variable.split('_')[0].lower()}-{role}"
        assert services[host]["command"] == [role]
        assert port == {"rest": "8000", "grpc": "50051"}[role]


def test_bootstrap_installs_nginx_for_the_gateway_and_for_development() -> None:
    script = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert "--dev) want_dev=1 want_gateway=1" in script
    assert "need_apt+=(nginx)" in script
    assert script.count("apt-get install") == 1  # one place installs Debian packages
    gateway = (ROOT / "scripts" / "gateway.sh").read_text()
    assert "scripts/bootstrap.sh --gateway" in gateway
    assert "apt-get" not in gateway


def test_a_procfile_line_runs_it_under_honcho(tmp_path: Path) -> None:
    """``gateway: scripts/gateway.sh`` as make run's Procfiles have it: serves
    in the foreground, and honcho's SIGTERM stops every nginx process."""
    procfile = tmp_path / "Procfile"
    procfile.write_text("gateway: scripts/gateway.sh\n")
    env = good_env(tmp_path)
    # Relative, as the default (.run/nginx) is: nginx must still find it.
    env["GATEWAY_DIR"] = os.path.relpath(tmp_path / "run", ROOT)
    server = Server(
        "honcho",
        [str(ROOT / ".venv" / "bin" / "honcho"), "start", "-f", str(procfile), "-d", str(ROOT)],
        env,
        tmp_path / "honcho.log",
    )
    try:
        server.start()
        server.wait_until(http_ok(int(env["REST_PORT"]), "/healthz"), timeout=30)
        nginx = [
            pid for pid in server.pids() if Path(f"/proc/{pid}/comm").read_text().strip() == "nginx"
        ]
        assert len(nginx) == 3  # the master and GATEWAY_WORKERS=2 workers
    finally:
        server.stop(grace=10)
    assert server.process is not None
    assert server.process.returncode is not None
    wait_for(lambda: not [pid for pid in nginx if Path(f"/proc/{pid}").exists()], timeout=5)
    assert "gateway.1 | " in server.log_text()


def test_the_nginx_image_renders_the_template_as_the_script_does(tmp_path: Path) -> None:
    """The official image's 20-envsubst-on-templates.sh: envsubst of every
    variable defined in the container (nginx's own $vars survive, being
    lowercase), with compose's environment for the gateway."""
    envsubst = shutil.which("envsubst")
    assert envsubst, "envsubst is missing: scripts/bootstrap.sh --dev installs it (gettext-base)"
    compose = yaml.safe_load((ROOT / "docker" / "compose.microservices.yml").read_text())
    environment = {
        k: str(v).replace("$$", "$")
        for k, v in compose["services"]["gateway"]["environment"].items()
    }
    # What else the image defines.
    container = {
        "PATH": "/usr/sbin:/usr/bin",
        "HOME": "/root",
        "HOSTNAME": "gw",
        "NGINX_VERSION": "1.27.5",
    }
    container |= environment
    shell_format = " ".join(f"${{{name}}}" for name in container)
    rendered = subprocess.run(
        [envsubst, shell_format],
        input=renderer.TEMPLATE.read_text(),
        env=container,
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    assert rendered == renderer.render_template(environment)
    assert "$proxy_add_x_forwarded_for" in rendered
    assert "X-Forwarded-Proto $scheme;" in rendered
    assert "server users-rest:8000;" in rendered
    # and what the image would run is valid nginx, with its own main config.
    (tmp_path / "arcana.conf").write_text(
        re.sub(r"server [a-z]+-(rest|grpc):(\d+);", r"server 127.0.0.1:\2;", rendered)
        .replace("listen 8000;", f"listen 127.0.0.1:{free_port()};")
        .replace("listen 50051 http2;", f"listen 127.0.0.1:{free_port()} http2;")
    )
    main = tmp_path / "nginx.conf"
    main.write_text(renderer.local_main_config(tmp_path))
    result = run_nginx_check(main, tmp_path)
    assert result.returncode == 0, result.stderr
