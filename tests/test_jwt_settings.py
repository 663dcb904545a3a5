"""JWT key settings: HS256 by default, a key pair when given, an inconsistent one refused."""

import importlib
import secrets
import sys
from pathlib import Path
from types import ModuleType

import pytest
import trustme

from tests.commands import refusal, run_manage
from tests.jwtkeys import private_key, private_pem, public_pem

PRODUCTION = "arcana.settings.production"


def production_env(**extra: str) -> dict[str, str]:
    return {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(48),
        "DJANGO_ALLOWED_HOSTS": "api.example.com",
        "REDIS_URL": "redis://127.0.0.1:6379/0",  # required; check never connects
        **extra,
    }


def check_deploy(env: dict[str, str]) -> tuple[int, str]:
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", settings=PRODUCTION, env=env
    )
    return result.returncode, result.stdout + result.stderr


def _import_settings(monkeypatch: pytest.MonkeyPatch, module: str, **env: str) -> ModuleType:
    # The MariaDB pass sets DATABASE_URL, which a controller tier refuses.
    dropped = ("JWT_SIGNING_KEY", "JWT_PRIVATE_KEY", "JWT_PUBLIC_KEY", "DATABASE_URL")
    for name in (*dropped, "ARCANA_MODE", "ARCANA_TIER", "ARCANA_SERVICE_ADDR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    names = (module, "arcana.settings.base")
    saved = {name: sys.modules.pop(name, None) for name in names}
    try:
        return importlib.import_module(module)
    finally:
        for name, old in saved.items():
            if old is not None:
                sys.modules[name] = old


# --- which algorithm -------------------------------------------------------------------


def test_hs256_with_the_signing_key_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    signing = secrets.token_urlsafe(48)
    test_settings = _import_settings(monkeypatch, "arcana.settings.test", JWT_SIGNING_KEY=signing)
    jwt_settings = test_settings.SIMPLE_JWT
    assert (jwt_settings["ALGORITHM"], jwt_settings["SIGNING_KEY"]) == ("HS256", signing)
    assert test_settings.JWT_KEYS is None


def test_a_private_key_switches_to_its_algorithm(monkeypatch: pytest.MonkeyPatch) -> None:
    key = private_key("ed25519")
    test_settings = _import_settings(
        monkeypatch, "arcana.settings.test", JWT_PRIVATE_KEY=private_pem(key)
    )
    jwt_settings = test_settings.SIMPLE_JWT
    assert jwt_settings["ALGORITHM"] == "EdDSA"
    assert jwt_settings["SIGNING_KEY"] == private_pem(key)
    assert jwt_settings["VERIFYING_KEY"] == public_pem(key)


def test_a_public_key_alone_only_verifies_in_a_layered_tier(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = private_key("p256")
    test_settings = _import_settings(
        monkeypatch,
        "arcana.settings.test",
        JWT_PUBLIC_KEY=public_pem(key),
        ARCANA_MODE="layered",
        ARCANA_TIER="controller",
        ARCANA_SERVICE_ADDR="service:50052",
    )
    jwt_settings = test_settings.SIMPLE_JWT
    assert (jwt_settings["ALGORITHM"], jwt_settings["SIGNING_KEY"]) == ("ES256", None)
    assert jwt_settings["VERIFYING_KEY"] == public_pem(key)


# --- production ------------------------------------------------------------------------


def test_production_refuses_a_private_key_that_does_not_match_the_public_key() -> None:
    env = production_env(
        JWT_PRIVATE_KEY=private_pem(private_key("ed25519")),
        JWT_PUBLIC_KEY=public_pem(private_key("ed25519")),
    )
    assert refusal(run_manage("check", settings=PRODUCTION, env=env)) == (
        "JWT_PUBLIC_KEY does not match JWT_PRIVATE_KEY: it is not that private key's public half."
    )


def test_production_refuses_a_public_key_alone_in_monolithic_mode() -> None:
    env = production_env(JWT_PUBLIC_KEY=public_pem(private_key("ed25519")))
    assert refusal(run_manage("check", settings=PRODUCTION, env=env)) == (
        "JWT_PRIVATE_KEY must be set in monolithic mode, whose processes mint tokens "
        "(JWT_PUBLIC_KEY alone only verifies them)."
    )


def test_production_refuses_a_signing_key_beside_a_key_pair() -> None:
    env = production_env(
        JWT_PRIVATE_KEY=private_pem(private_key("ed25519")), JWT_SIGNING_KEY=secrets.token_hex(32)
    )
    assert refusal(run_manage("check", settings=PRODUCTION, env=env)) == (
        "JWT_SIGNING_KEY must not be set with JWT_PRIVATE_KEY or JWT_PUBLIC_KEY "
        "(tokens are signed with the private key)."
    )


def test_production_still_demands_a_signing_key_without_a_key_pair() -> None:
    result = run_manage("check", settings=PRODUCTION, env=production_env())
    assert refusal(result) == "JWT_SIGNING_KEY must be set in production."


def test_production_passes_check_deploy_with_a_private_key_file(tmp_path: Path) -> None:
    """No JWT_SIGNING_KEY needed: the private key (a file here) is the signing key."""
    path = tmp_path / "jwt.key"
    path.write_text(private_pem(private_key("ed25519")))
    code, output = check_deploy(production_env(JWT_PRIVATE_KEY=str(path)))
    assert code == 0, output
    assert "no issues" in output


def test_production_passes_check_deploy_for_a_verifying_controller_tier(tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("controller.internal")
    files = {"cert": tmp_path / "tier.pem", "key": tmp_path / "tier.key", "ca": tmp_path / "ca.pem"}
    leaf.cert_chain_pems[0].write_to_path(str(files["cert"]))
    leaf.private_key_pem.write_to_path(str(files["key"]))
    ca.cert_pem.write_to_path(str(files["ca"]))
    env = production_env(
        JWT_PUBLIC_KEY=public_pem(private_key("ed25519")),
        ARCANA_MODE="layered",
        ARCANA_TIER="controller",
        ARCANA_SERVICE_ADDR="service:50052",
        ARCANA_INTERNAL_TLS_CERT=str(files["cert"]),
        ARCANA_INTERNAL_TLS_KEY=str(files["key"]),
        ARCANA_INTERNAL_TLS_CA=str(files["ca"]),
    )
    code, output = check_deploy(env)
    assert code == 0, output


# --- production, layered mode ------------------------------------------------------------


@pytest.mark.parametrize(
    "tier_env",
    [
        {
            "ARCANA_TIER": "controller",
            "ARCANA_SERVICE_ADDR": "service:50052",
            "JWT_PUBLIC_KEY": public_pem(private_key("ed25519")),
        },
        # The repository tier calls nothing, but would serve its port in plaintext.
        {"ARCANA_TIER": "repository"},
    ],
    ids=["controller", "repository"],
)
def test_production_refuses_plaintext_between_tiers(tier_env: dict[str, str]) -> None:
    env = production_env(ARCANA_MODE="layered", ARCANA_INTERNAL_INSECURE="true", **tier_env)
    assert refusal(run_manage("check", settings=PRODUCTION, env=env)) == (
        "ARCANA_INTERNAL_INSECURE=true is for local runs only: production's internal calls "
        "use mutual TLS (ARCANA_INTERNAL_TLS_CERT, _KEY and _CA)."
    )


def test_production_passes_check_deploy_for_a_repository_tier_without_a_jwt_key() -> None:
    """It neither mints nor verifies tokens: no JWT_SIGNING_KEY is demanded of it,
    as it would be in monolithic mode."""
    code, output = check_deploy(production_env(ARCANA_MODE="layered", ARCANA_TIER="repository"))
    assert code == 0, output
    assert "no issues" in output
