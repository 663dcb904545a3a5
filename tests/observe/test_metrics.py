"""Prometheus metrics: what a scrape of ``/metrics`` and of a gRPC process's
metrics port says after known traffic."""

from collections.abc import Iterator

import grpc
import pytest
from django.core.cache import cache
from django.test import override_settings
from django.urls import resolve
from rest_framework.test import APIClient

from arcana.grpc.server import ArcanaServer
from arcana.observe.server import serve_metrics
from protos.arcana.v1 import users_pb2
from protos.arcana.v1.users_pb2_grpc import UserServiceStub
from tests.conftest import client_for
from tests.grpc.conftest import auth_for, live_db, start_server
from tests.observe.scrape import sample, scrape, side_port
from users.models import User

pytestmark = pytest.mark.django_db


def metrics_text(**extra: str) -> str:
    response = APIClient().get("/metrics", **extra)  # type: ignore[arg-type]
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    text: str = response.content.decode()
    return text


def test_rest_requests_are_counted_and_timed_by_route(
    admin_user: User, user: User, other_user: User
) -> None:
    before = metrics_text()
    client = client_for(admin_user)
    for target in (user, other_user, user):
        assert client.get(f"/api/v1/users/{target.id}").status_code == 200
    assert client.get("/api/v1/users/not-a-uuid").status_code == 404
    after = metrics_text()

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    route = resolve(f"/api/v1/users/{user.id}").route  # the pattern, as Django has it
    assert delta("arcana_http_requests_total", route=route, method="GET", status="200") == 3
    assert delta("arcana_http_request_duration_seconds_count", route=route, method="GET") >= 3
    assert delta("arcana_http_request_duration_seconds_sum", route=route) > 0
    # Never a raw path: no label holds an id.
    assert str(user.id) not in after
    # The database was asked, and the user cache read for each of the three
    # (misses: users written moments ago are not cached yet).
    assert delta("arcana_db_queries_total") > 0
    assert delta("arcana_db_query_duration_seconds_count") == delta("arcana_db_queries_total")
    assert delta("arcana_cache_reads_total", cache="user") >= 3


def test_cache_hits_and_misses_are_told_apart(user: User) -> None:
    from users import repository

    cache.clear()  # the tombstone of the user's creation
    before = metrics_text()
    repository.user_get(user_id=str(user.id))  # a miss, which fills the cache
    repository.user_get(user_id=str(user.id))  # a hit
    after = metrics_text()
    for result in ("hit", "miss"):
        assert sample(after, "arcana_cache_reads_total", cache="user", result=result) == (
            sample(before, "arcana_cache_reads_total", cache="user", result=result) + 1
        )


def test_an_unmatched_path_is_one_route_not_its_path() -> None:
    before = metrics_text()
    assert APIClient().get("/no/such/page-42").status_code == 404
    after = metrics_text()
    labels = {"route": "<unmatched>", "status": "404"}
    assert sample(after, "arcana_http_requests_total", **labels) == (
        sample(before, "arcana_http_requests_total", **labels) + 1
    )
    assert "page-42" not in after


@override_settings(THROTTLE_RATES={"login": "2/min", "register": "2/min", "refresh": "2/min"})
def test_failed_logins_and_throttled_requests_are_counted() -> None:
    before = metrics_text()
    client = APIClient()
    body = {"email": "who@example.com", "password": "whatever-123"}
    codes = [client.post("/api/v1/auth/login", body, format="json").status_code for _ in range(3)]
    assert codes == [401, 401, 429]
    after = metrics_text()
    assert (
        sample(after, "arcana_login_failures_total") - sample(before, "arcana_login_failures_total")
        == 2
    )
    assert (
        sample(after, "arcana_throttled_requests_total", scope="login")
        - sample(before, "arcana_throttled_requests_total", scope="login")
        == 1
    )


@override_settings(LOGIN_LOCKOUT_FAILURES=2, LOGIN_LOCKOUT_SECONDS=60)
def test_lockouts_are_counted(user: User) -> None:
    before = metrics_text()
    client = APIClient()
    body = {"email": user.email, "password": "not the password 42"}
    codes = [client.post("/api/v1/auth/login", body, format="json").status_code for _ in range(3)]
    assert codes == [401, 401, 429]
    after = metrics_text()

    def delta(event: str) -> float:
        return sample(after, "arcana_lockouts_total", event=event) - sample(
            before, "arcana_lockouts_total", event=event
        )

    assert (delta("locked"), delta("refused")) == (1, 1)


def test_metrics_are_refused_to_other_addresses() -> None:
    response = APIClient().get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


@override_settings(METRICS_TOKEN="a-scraper-token-for-tests-0123456789")
def test_a_bearer_token_opens_them_from_anywhere() -> None:
    good = "Bearer a-scraper-token-for-tests-0123456789"
    text = metrics_text(HTTP_AUTHORIZATION=good, REMOTE_ADDR="203.0.113.9")
    assert "arcana_http_requests_total" in text
    wrong = APIClient().get("/metrics", HTTP_AUTHORIZATION="Bearer nope", REMOTE_ADDR="203.0.113.9")
    assert wrong.status_code == 403


@override_settings(METRICS_ALLOWED_IPS=["10.1.0.0/16"])
def test_allowed_networks_are_networks() -> None:
    assert metrics_text(REMOTE_ADDR="10.1.200.3")
    assert APIClient().get("/metrics").status_code == 403  # the loopback is not listed now


def test_a_scraper_may_name_the_host_as_it_sees_it() -> None:
    # Pods and containers are scraped by their own address, which
    # DJANGO_ALLOWED_HOSTS need not list; every other path still refuses it.
    assert metrics_text(HTTP_HOST="10.1.2.3:8000")
    assert APIClient().get("/healthz", HTTP_HOST="10.1.2.3:8000").status_code == 400
    assert (
        APIClient()
        .get("/metrics", HTTP_HOST="10.1.2.3:8000", REMOTE_ADDR="203.0.113.9")
        .status_code
        == 403
    )


@override_settings(METRICS_ENABLED=False)
def test_metrics_off_is_not_found() -> None:
    response = APIClient().get("/metrics")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_metrics_do_not_take_writes() -> None:
    assert APIClient().post("/metrics").status_code == 405


# --- gRPC ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def metered_server() -> Iterator[tuple[ArcanaServer, int]]:
    server = start_server(health_interval=3600)
    port = side_port()
    metrics_server = serve_metrics("127.0.0.1", port)
    yield server, port
    metrics_server.shutdown()
    server.stop(grace=0).wait()


@live_db
def test_grpc_calls_are_counted_by_method_and_code(
    metered_server: tuple[ArcanaServer, int], user: User
) -> None:
    server, port = metered_server
    method = "/arcana.v1.UserService/GetUser"
    before = scrape(port)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = UserServiceStub(channel)
        for _ in range(3):
            stub.GetUser(users_pb2.GetUserRequest(id=str(user.id)), metadata=auth_for(user))
        with pytest.raises(grpc.RpcError) as refused:
            stub.GetUser(users_pb2.GetUserRequest(id=str(user.id)))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    after = scrape(port)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("arcana_grpc_calls_total", server="public", method=method, code="OK") == 3
    assert delta("arcana_grpc_calls_total", method=method, code="UNAUTHENTICATED") == 1
    assert delta("arcana_grpc_call_duration_seconds_count", server="public", method=method) == 4
    assert sample(after, "arcana_grpc_in_flight_calls", server="public") == 0
    # Health is infrastructure: not counted.
    assert "grpc.health" not in after
