"""ARCANA_MODE, ARCANA_TIER and the peer addresses: parsed once, refused loudly;
and what each tier serves over HTTP."""

import dataclasses
import importlib.util
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

import arcana.urls
from arcana.modes import Deployment, Mode, Tier, deployment_from_env, parse_targets
from tests.commands import refusal, run_manage
from tests.jwtkeys import key_pair, simple_jwt, tier_keys

CONTROLLER = {"ARCANA_MODE": "layered", "ARCANA_TIER": "controller", **tier_keys("controller")}
SERVICE = {"ARCANA_MODE": "layered", "ARCANA_TIER": "service", **tier_keys("service")}
REPOSITORY = {"ARCANA_MODE": "layered", "ARCANA_TIER": "repository"}
ADDR_FORMS = "host:port[,host:port...] or dns:///name:port"

# Every refusal: the environment, and the one line the process stops with.
REFUSALS: list[tuple[dict[str, str], str]] = [
    (
        {"ARCANA_MODE": "monolith"},
        "ARCANA_MODE must be one of monolithic, layered, microservices (got 'monolith').",
    ),
    (
        {"ARCANA_MODE": "microservices"},
        "ARCANA_MODE=microservices is not available yet; use monolithic or layered.",
    ),
    (
        {"ARCANA_MODE": "layered"},
        "ARCANA_TIER must be set in layered mode: one of controller, service, repository.",
    ),
    (
        {"ARCANA_MODE": "layered", "ARCANA_TIER": "gateway"},
        "ARCANA_TIER must be one of controller, service, repository (got 'gateway').",
    ),
    (
        {"ARCANA_TIER": "service"},
        "ARCANA_TIER is only for ARCANA_MODE=layered (the mode is monolithic).",
    ),
    (
        {"ARCANA_MODE": "monolithic", "ARCANA_TIER": "repository"},
        "ARCANA_TIER is only for ARCANA_MODE=layered (the mode is monolithic).",
    ),
    (CONTROLLER, f"ARCANA_SERVICE_ADDR must be set for the controller tier: {ADDR_FORMS}."),
    (
        # The controller needs the service's address, not the repository's.
        {**CONTROLLER, "ARCANA_REPOSITORY_ADDR": "repo:50053"},
        f"ARCANA_SERVICE_ADDR must be set for the controller tier: {ADDR_FORMS}.",
    ),
    (SERVICE, f"ARCANA_REPOSITORY_ADDR must be set for the service tier: {ADDR_FORMS}."),
    (
        {**CONTROLLER, "ARCANA_SERVICE_ADDR": "service"},
        f"ARCANA_SERVICE_ADDR: 'service' is not {ADDR_FORMS}.",
    ),
    (
        {**CONTROLLER, "ARCANA_SERVICE_ADDR": "svc-1:50052,svc-2:0"},
        f"ARCANA_SERVICE_ADDR: 'svc-2:0' is not {ADDR_FORMS}.",
    ),
    (
        {**SERVICE, "ARCANA_REPOSITORY_ADDR": "dns://repo:50053"},
        f"ARCANA_REPOSITORY_ADDR: 'dns://repo:50053' is not {ADDR_FORMS}.",
    ),
    (
        # Checked wherever set, even by a tier that does not call that peer.
        {**REPOSITORY, "ARCANA_SERVICE_ADDR": "http://svc:50052"},
        f"ARCANA_SERVICE_ADDR: 'http://svc:50052' is not {ADDR_FORMS}.",
    ),
    (
        {"ARCANA_INTERNAL_DEADLINE": "soon"},
        "ARCANA_INTERNAL_DEADLINE must be a number of seconds above 0 (got 'soon').",
    ),
    (
        {**REPOSITORY, "ARCANA_INTERNAL_DEADLINE": "-1"},
        "ARCANA_INTERNAL_DEADLINE must be a number of seconds above 0 (got '-1').",
    ),
    (
        {"ARCANA_INTERNAL_DEADLINE": "inf"},
        "ARCANA_INTERNAL_DEADLINE must be a number of seconds above 0 (got 'inf').",
    ),
    (
        {"ARCANA_INTERNAL_INSECURE": "maybe"},
        "ARCANA_INTERNAL_INSECURE must be true or false (got 'maybe').",
    ),
]


def _ids(cases: list[tuple[dict[str, str], str]]) -> list[str]:
    return [",".join(f"{k}={v}" for k, v in env.items()) for env, _ in cases]


# --- the parser -----------------------------------------------------------------------


def test_no_configuration_is_monolithic() -> None:
    deployment = deployment_from_env({})
    assert deployment == Deployment(mode=Mode.MONOLITHIC)
    assert deployment.tier is None
    assert deployment.internal_deadline == 2.0
    assert deployment.internal_insecure is False
    assert deployment.holds_database is True


def test_empty_values_count_as_unset() -> None:
    env = {"ARCANA_MODE": " ", "ARCANA_TIER": "", "ARCANA_INTERNAL_DEADLINE": ""}
    assert deployment_from_env(env) == Deployment(mode=Mode.MONOLITHIC)


def test_the_settings_expose_the_deployment() -> None:
    assert Deployment(mode=Mode.MONOLITHIC) == settings.ARCANA_DEPLOYMENT


def test_controller_tier_with_a_static_list_of_service_replicas() -> None:
    deployment = deployment_from_env(
        {
            "ARCANA_MODE": "Layered",
            "ARCANA_TIER": " CONTROLLER ",
            "ARCANA_SERVICE_ADDR": "svc-1:50052, 10.0.0.7:50052,[::1]:50052",
            "ARCANA_INTERNAL_DEADLINE": "0.5",
            "ARCANA_INTERNAL_INSECURE": "true",
        }
    )
    assert deployment == Deployment(
        mode=Mode.LAYERED,
        tier=Tier.CONTROLLER,
        service_targets=("svc-1:50052", "10.0.0.7:50052", "[::1]:50052"),
        internal_deadline=0.5,
        internal_insecure=True,
    )
    assert deployment.holds_database is False


def test_service_tier_with_a_dns_target() -> None:
    deployment = deployment_from_env(
        {**SERVICE, "ARCANA_REPOSITORY_ADDR": "dns:///repository.arcana.svc:50053"}
    )
    assert deployment.tier is Tier.SERVICE
    assert deployment.repository_targets == ("dns:///repository.arcana.svc:50053",)
    assert deployment.service_targets == ()
    assert deployment.holds_database is False


def test_repository_tier_needs_no_peer_and_holds_the_database() -> None:
    deployment = deployment_from_env(REPOSITORY)
    assert deployment == Deployment(mode=Mode.LAYERED, tier=Tier.REPOSITORY)
    assert deployment.holds_database is True


def test_a_tier_keeps_only_the_address_of_the_tier_it_calls() -> None:
    """One environment file may serve every tier: unneeded addresses are ignored."""
    shared = {"ARCANA_SERVICE_ADDR": "svc:50052", "ARCANA_REPOSITORY_ADDR": "repo:50053"}
    controller = deployment_from_env({**CONTROLLER, **shared})
    service = deployment_from_env({**SERVICE, **shared})
    repository = deployment_from_env({**REPOSITORY, **shared})
    assert (controller.service_targets, controller.repository_targets) == (("svc:50052",), ())
    assert (service.service_targets, service.repository_targets) == ((), ("repo:50053",))
    assert (repository.service_targets, repository.repository_targets) == ((), ())


@pytest.mark.parametrize(("word", "value"), [("1", True), ("YES", True), ("off", False)])
def test_insecure_flag_words(word: str, value: bool) -> None:
    assert deployment_from_env({"ARCANA_INTERNAL_INSECURE": word}).internal_insecure is value


@pytest.mark.parametrize(
    "target",
    [
        "svc:50052",
        "svc.arcana.svc.cluster.local:1",
        "127.0.0.1:65535",
        "[2001:db8::1]:50052",
        "dns:///svc:50052",
        "dns:///[::1]:50052",
    ],
)
def test_valid_targets(target: str) -> None:
    assert parse_targets("X", target) == (target,)


@pytest.mark.parametrize(
    "target",
    [
        "",
        "svc",
        "svc:",
        ":50052",
        "svc:65536",
        "svc:0",
        "svc:\uff15\uff10\uff10\uff15\uff12",  # fullwidth digits: isdigit(), not ASCII
        "-svc:50052",
        "sv_c:50052",
        "svc..x:50052",
        "[not-ipv6]:50052",
        "2001:db8::1:50052",  # IPv6 needs brackets
        "dns:///svc",
        "dns://8.8.8.8/svc:50052",
        "ipv4:127.0.0.1:50052",
        "svc:50052,",
        "svc:50052,dns:///svc:50052",
    ],
)
def test_invalid_targets(target: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^X: '.*' is not host:port"):
        parse_targets("X", target)


@pytest.mark.parametrize(("env", "message"), REFUSALS, ids=_ids(REFUSALS))
def test_refusals(env: dict[str, str], message: str) -> None:
    with pytest.raises(ImproperlyConfigured) as caught:
        deployment_from_env(env)
    assert str(caught.value) == message


# --- the process ----------------------------------------------------------------------


@pytest.mark.parametrize(("env", "message"), REFUSALS, ids=_ids(REFUSALS))
def test_manage_check_stops_with_the_line(env: dict[str, str], message: str) -> None:
    assert refusal(run_manage("check", env=env)) == message


@pytest.mark.parametrize(
    "env",
    [
        {},
        # The controller and service tiers build their clients of the tier below
        # at start-up: plaintext is allowed explicitly (tests/internal checks
        # the refusal without it).
        {
            **CONTROLLER,
            "ARCANA_SERVICE_ADDR": "svc-1:50052,svc-2:50052",
            "ARCANA_INTERNAL_INSECURE": "true",
        },
        {
            **SERVICE,
            "ARCANA_REPOSITORY_ADDR": "dns:///repository:50053",
            "ARCANA_INTERNAL_INSECURE": "true",
        },
        REPOSITORY,
    ],
    ids=["monolithic", "controller", "service", "repository"],
)
def test_manage_check_passes_in_every_runnable_mode(env: dict[str, str]) -> None:
    result = run_manage("check", env=env)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


# --- the JWT key each layered tier holds -------------------------------------------------

# Runnable tiers but for their JWT keys: each test adds (or leaves out) the key.
_LAYERED = {"ARCANA_MODE": "layered", "ARCANA_INTERNAL_INSECURE": "true"}
_BARE = {
    "controller": {**_LAYERED, "ARCANA_TIER": "controller", "ARCANA_SERVICE_ADDR": "svc:50052"},
    "service": {**_LAYERED, "ARCANA_TIER": "service", "ARCANA_REPOSITORY_ADDR": "repo:50053"},
    "repository": {**_LAYERED, "ARCANA_TIER": "repository"},
}
KEY_REFUSALS: list[tuple[dict[str, str], str]] = [
    (
        # HS256 would let every tier that verifies tokens mint them too.
        {**_BARE["service"], **tier_keys("service"), "JWT_SIGNING_KEY": "s" * 48},
        "JWT_SIGNING_KEY (HS256) is not for layered mode, where only the service tier may "
        "mint tokens: use JWT_PRIVATE_KEY there and JWT_PUBLIC_KEY at the controller.",
    ),
    (
        {**_BARE["repository"], "JWT_SIGNING_KEY": "s" * 48},
        "JWT_SIGNING_KEY (HS256) is not for layered mode, where only the service tier may "
        "mint tokens: use JWT_PRIVATE_KEY there and JWT_PUBLIC_KEY at the controller.",
    ),
    (_BARE["service"], "JWT_PRIVATE_KEY must be set for the service tier (it mints tokens)."),
    (
        # The public half alone cannot mint.
        {**_BARE["service"], **tier_keys("controller")},
        "JWT_PRIVATE_KEY must be set for the service tier (it mints tokens).",
    ),
    (
        {**_BARE["controller"], **tier_keys("service")},
        "JWT_PRIVATE_KEY must not be set for the controller tier: only the service tier "
        "mints tokens (give the controller JWT_PUBLIC_KEY).",
    ),
    (
        {**_BARE["repository"], **tier_keys("service")},
        "JWT_PRIVATE_KEY must not be set for the repository tier: only the service tier "
        "mints tokens (give the controller JWT_PUBLIC_KEY).",
    ),
    (
        _BARE["controller"],
        "JWT_PUBLIC_KEY must be set for the controller tier (it verifies access tokens).",
    ),
]


@pytest.mark.parametrize(
    ("env", "message"),
    KEY_REFUSALS,
    ids=[
        "signing-key-at-service",
        "signing-key-at-repository",
        "service-without-private-key",
        "service-with-public-key-only",
        "private-key-at-controller",
        "private-key-at-repository",
        "controller-without-public-key",
    ],
)
def test_a_tier_holding_the_wrong_jwt_key_stops_with_the_line(
    env: dict[str, str], message: str
) -> None:
    assert refusal(run_manage("check", env=env)) == message


# --- what each tier serves over HTTP ------------------------------------------------------

NOT_FOUND = {"error": "Not found.", "code": "not_found"}


@pytest.fixture
def serve_as(settings: Any) -> Iterator[Callable[[str], Client]]:
    """A client of this process routed as ``tier`` would route it: arcana/urls.py
    imported afresh (under another name) with that tier's deployment."""
    loaded: list[str] = []

    def serve(tier: str) -> Client:
        settings.ARCANA_DEPLOYMENT = dataclasses.replace(
            settings.ARCANA_DEPLOYMENT, mode=Mode.LAYERED, tier=Tier(tier)
        )
        name = f"tests._urls_of_the_{tier}_tier"
        spec = importlib.util.spec_from_file_location(name, arcana.urls.__file__)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loaded.append(name)
        spec.loader.exec_module(module)
        settings.ROOT_URLCONF = name  # setting_changed clears the URL caches
        return Client()

    yield serve
    for name in loaded:
        del sys.modules[name]


def _refused(response: Any) -> bool:
    """The contract's JSON 404: the route is not there."""
    return bool(response.status_code == 404 and response.json() == NOT_FOUND)


@pytest.mark.django_db
def test_the_controller_tier_serves_the_api_and_the_jwks_but_not_the_admin(
    serve_as: Callable[[str], Client], settings: Any
) -> None:
    settings.SIMPLE_JWT = simple_jwt(key_pair(), verify_only=True)  # the controller's key
    client = serve_as("controller")
    refused_login = client.post("/api/v1/auth/login", {}, content_type="application/json")
    assert refused_login.status_code == 400  # routed: the serializer refused the empty body
    assert client.get("/api/v1/users").status_code == 401
    jwks = client.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    assert jwks.json()["keys"][0]["kty"] == "OKP"
    assert client.get("/api/schema").status_code == 200
    assert client.get("/healthz").status_code == 200
    assert _refused(client.get("/admin/"))
    assert _refused(client.get("/admin/login/"))


@pytest.mark.django_db
def test_the_repository_tier_serves_the_admin_and_the_probes_but_not_the_api(
    serve_as: Callable[[str], Client],
) -> None:
    client = serve_as("repository")
    admin = client.get("/admin/")
    assert admin.status_code == 302
    assert admin["Location"].startswith("/admin/login/")
    assert client.get("/admin/login/").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"
    login = client.post("/api/v1/auth/login", {}, content_type="application/json")
    assert _refused(login)
    assert _refused(client.get("/api/v1/users"))
    assert _refused(client.get("/.well-known/jwks.json"))
    assert _refused(client.get("/api/schema"))


def test_the_service_tier_serves_the_probes_only(serve_as: Callable[[str], Client]) -> None:
    client = serve_as("service")
    assert client.get("/healthz").json() == {"status": "ok"}
    for path in ("/admin/", "/api/v1/users", "/.well-known/jwks.json", "/api/docs"):
        assert _refused(client.get(path)), path
