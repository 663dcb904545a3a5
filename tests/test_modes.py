"""ARCANA_MODE, ARCANA_TIER and the peer addresses: parsed once, refused loudly;
and what each tier serves over HTTP."""

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from arcana.modes import Deployment, Mode, Service, Tier, deployment_from_env, parse_targets
from tests.commands import refusal, run_manage
from tests.jwtkeys import key_pair, simple_jwt, tier_keys
from tests.routing import refused as _refused

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
        "ARCANA_SERVICE must be set in microservices mode: one of users, auth.",
    ),
    (
        {"ARCANA_MODE": "microservices", "ARCANA_SERVICE": "billing"},
        "ARCANA_SERVICE must be one of users, auth (got 'billing').",
    ),
    (
        {"ARCANA_MODE": "microservices", "ARCANA_SERVICE": "auth"},
        "ARCANA_USERS_ADDR must be set for the auth service (it calls the other one's "
        f"internal server): {ADDR_FORMS}.",
    ),
    (
        # The users service needs auth's address, not its own.
        {"ARCANA_MODE": "microservices", "ARCANA_SERVICE": "users", "ARCANA_USERS_ADDR": "u:1"},
        "ARCANA_AUTH_ADDR must be set for the users service (it calls the other one's "
        f"internal server): {ADDR_FORMS}.",
    ),
    (
        {"ARCANA_SERVICE": "users"},
        "ARCANA_SERVICE is only for ARCANA_MODE=microservices (the mode is monolithic).",
    ),
    (
        {**REPOSITORY, "ARCANA_SERVICE": "users"},
        "ARCANA_SERVICE is only for ARCANA_MODE=microservices (the mode is layered).",
    ),
    (
        {"ARCANA_MODE": "microservices", "ARCANA_SERVICE": "users", "ARCANA_TIER": "service"},
        "ARCANA_TIER is only for ARCANA_MODE=layered (the mode is microservices).",
    ),
    (
        {"ARCANA_AUTH_ADDR": "auth:50052,"},
        f"ARCANA_AUTH_ADDR: '' is not {ADDR_FORMS}.",
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
    # Key material is generated per process: name it, not its bytes, so every
    # pytest-xdist worker collects the same ids.
    return [
        ",".join(f"{k}=<key>" if "KEY" in k else f"{k}={v}" for k, v in env.items())
        for env, _ in cases
    ]


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


def test_each_microservice_keeps_the_other_ones_address_and_its_own_database() -> None:
    shared = {
        "ARCANA_MODE": "microservices",
        "ARCANA_USERS_ADDR": "dns:///users-internal:50052",
        "ARCANA_AUTH_ADDR": "auth-1:50052,auth-2:50052",
    }
    users = deployment_from_env({**shared, "ARCANA_SERVICE": "Users"})
    auth = deployment_from_env({**shared, "ARCANA_SERVICE": "auth"})
    assert users == Deployment(
        mode=Mode.MICROSERVICES,
        service=Service.USERS,
        auth_targets=("auth-1:50052", "auth-2:50052"),
    )
    assert auth == Deployment(
        mode=Mode.MICROSERVICES,
        service=Service.AUTH,
        users_targets=("dns:///users-internal:50052",),
    )
    assert users.holds_database
    assert auth.holds_database
    assert (users.owned_app, auth.owned_app) == ("users", "authn")
    assert users.owns("users")
    assert not users.owns("authn")
    assert auth.owns("authn")
    assert not auth.owns("users")
    assert (users.name, auth.name) == ("users", "auth")
    # A remote boundary of the other app is served by the service owning it.
    assert users.internal_targets(app="authn", home="service") == ("auth-1:50052", "auth-2:50052")
    assert auth.internal_targets(app="users", home="service") == ("dns:///users-internal:50052",)


def test_outside_microservices_mode_every_process_runs_every_app() -> None:
    for deployment in (deployment_from_env({}), deployment_from_env(REPOSITORY)):
        assert deployment.owned_app is None
        assert deployment.owns("users")
        assert deployment.owns("authn")


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
    "users": {
        "ARCANA_MODE": "microservices",
        "ARCANA_SERVICE": "users",
        "ARCANA_AUTH_ADDR": "auth:50052",
        "ARCANA_INTERNAL_INSECURE": "true",
    },
    "auth": {
        "ARCANA_MODE": "microservices",
        "ARCANA_SERVICE": "auth",
        "ARCANA_USERS_ADDR": "users:50052",
        "ARCANA_INTERNAL_INSECURE": "true",
    },
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
    (
        {**_BARE["auth"], **tier_keys("service"), "JWT_SIGNING_KEY": "s" * 48},
        "JWT_SIGNING_KEY (HS256) is not for microservices mode, where only the auth service "
        "may mint tokens: use JWT_PRIVATE_KEY there and JWT_PUBLIC_KEY at the users service.",
    ),
    (_BARE["auth"], "JWT_PRIVATE_KEY must be set for the auth service (it mints tokens)."),
    (
        {**_BARE["users"], **tier_keys("service")},
        "JWT_PRIVATE_KEY must not be set for the users service: only the auth service "
        "mints tokens (give the users service JWT_PUBLIC_KEY).",
    ),
    (
        _BARE["users"],
        "JWT_PUBLIC_KEY must be set for the users service (it verifies access tokens).",
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
        "signing-key-at-auth",
        "auth-without-private-key",
        "private-key-at-users",
        "users-without-public-key",
    ],
)
def test_a_tier_holding_the_wrong_jwt_key_stops_with_the_line(
    env: dict[str, str], message: str
) -> None:
    assert refusal(run_manage("check", env=env)) == message


# --- what each tier serves over HTTP ------------------------------------------------------


@pytest.fixture
def serve_as(
    settings: Any, routed_as: Callable[[Deployment, str], Client]
) -> Callable[[str], Client]:
    """A client of this process routed as ``tier`` would route it."""

    def serve(tier: str) -> Client:
        deployment = dataclasses.replace(
            settings.ARCANA_DEPLOYMENT, mode=Mode.LAYERED, tier=Tier(tier)
        )
        return routed_as(deployment, f"the_{tier}_tier")

    return serve


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
