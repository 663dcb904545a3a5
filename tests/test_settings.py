"""Production settings refuse weak or missing keys and pass check --deploy."""

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.commands import run_manage

ROOT = Path(__file__).resolve().parent.parent


def run_production(extra_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``manage.py`` under production settings; an empty value means "unset".
    A Redis URL is given by default: check and check --deploy never connect to it."""
    env = {"REDIS_URL": "redis://127.0.0.1:6379/0", **extra_env}
    unset = {key for key, value in env.items() if value == ""}
    return run_manage(
        *args,
        settings="arcana.settings.production",
        env={key: value for key, value in env.items() if key not in unset},
    )


def strong() -> str:
    return secrets.token_urlsafe(48)


@pytest.mark.parametrize(
    ("secret", "jwt", "message"),
    [
        (None, "x", "DJANGO_SECRET_KEY must be set"),
        ("short", "x", "DJANGO_SECRET_KEY must be at least 32 bytes"),
        ("change-me-" * 5, "x", "DJANGO_SECRET_KEY looks like a placeholder"),
        ("a" * 40, "x", "DJANGO_SECRET_KEY repeats itself"),
        ("abcdefgh" * 4, "x", "DJANGO_SECRET_KEY repeats itself"),
        ("x", "password" * 8, "JWT_SIGNING_KEY repeats itself"),
        ("abcdefghijklmnopqrstuvwxyz012345", "x", "DJANGO_SECRET_KEY has too little entropy"),
        ("x", "correct horse battery staple ok!", "JWT_SIGNING_KEY has too little entropy"),
        ("STRONG", None, "JWT_SIGNING_KEY must be set"),
        ("STRONG", "too-short-for-hs256", "JWT_SIGNING_KEY must be at least 32 bytes"),
        ("STRONG", "SAME", "must differ"),
    ],
)
def test_production_refuses_weak_or_missing_keys(
    secret: str | None, jwt: str | None, message: str
) -> None:
    env: dict[str, str] = {}
    key = strong()
    if secret is not None:
        env["DJANGO_SECRET_KEY"] = (
            key if secret == "STRONG" else (strong() if secret == "x" else secret)
        )
    if jwt is not None:
        env["JWT_SIGNING_KEY"] = key if jwt == "SAME" else (strong() if jwt == "x" else jwt)
    result = run_production(env, "check")
    assert result.returncode != 0
    assert message in result.stderr


def test_production_passes_check_deploy_with_documented_variables() -> None:
    result = run_production(
        {
            "DJANGO_SECRET_KEY": strong(),
            "JWT_SIGNING_KEY": strong(),
            "DJANGO_ALLOWED_HOSTS": "api.example.com",
        },
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_argon2id_is_the_default_hasher() -> None:
    from django.contrib.auth.hashers import Argon2PasswordHasher
    from django.utils.module_loading import import_string

    from arcana.settings import base

    first = import_string(base.PASSWORD_HASHERS[0])
    assert issubclass(first, Argon2PasswordHasher)
    # Same algorithm name as Django's: hashes stored before still verify (and upgrade).
    assert first.algorithm == "argon2"


def test_local_settings_make_and_keep_development_keys(tmp_path: Path) -> None:
    code = "import arcana.settings.local as s; print(s.SECRET_KEY); print(s.JWT_SIGNING_KEY)"
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SECRET_KEY", "JWT_SIGNING_KEY"}}
    first = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    second = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    secret, jwt = first.stdout.split()
    assert first.stdout == second.stdout
    assert len(secret) >= 32
    assert secret != jwt


def _import_production(monkeypatch: pytest.MonkeyPatch, **env: str) -> object:
    import importlib
    import sys as _sys

    for name in ("DJANGO_SECRET_KEY", "JWT_SIGNING_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # base reads the environment at import: import both afresh.
    modules = ("arcana.settings.production", "arcana.settings.base")
    saved = {name: _sys.modules.pop(name, None) for name in modules}
    try:
        return importlib.import_module("arcana.settings.production")
    finally:
        for name, module in saved.items():
            if module is not None:
                _sys.modules[name] = module


def test_production_module_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.exceptions import ImproperlyConfigured

    secret, jwt_key = strong(), strong()
    module = _import_production(monkeypatch, DJANGO_SECRET_KEY=secret, JWT_SIGNING_KEY=jwt_key)
    assert secret == module.SECRET_KEY  # type: ignore[attr-defined]
    assert module.SIMPLE_JWT["SIGNING_KEY"] == jwt_key  # type: ignore[attr-defined]
    assert module.DEBUG is False  # type: ignore[attr-defined]
    assert module.SESSION_COOKIE_SECURE is True  # type: ignore[attr-defined]
    with pytest.raises(ImproperlyConfigured, match="JWT_SIGNING_KEY must be set"):
        _import_production(monkeypatch, DJANGO_SECRET_KEY=secret)
    with pytest.raises(ImproperlyConfigured, match="must differ"):
        _import_production(monkeypatch, DJANGO_SECRET_KEY=secret, JWT_SIGNING_KEY=secret)


def test_production_refuses_to_start_without_a_shared_cache() -> None:
    result = run_production(
        {"DJANGO_SECRET_KEY": strong(), "JWT_SIGNING_KEY": strong(), "REDIS_URL": ""}, "check"
    )
    assert result.returncode != 0
    assert "REDIS_URL (or REDIS_SENTINELS) must be set in production" in result.stderr


def test_production_runs_one_host_without_redis_only_when_told_so(tmp_path: Path) -> None:
    code = (
        "from django.conf import settings; "
        "print(settings.CACHES['default']['BACKEND'], settings.USER_CACHE)"
    )
    result = run_production(
        {
            "DJANGO_SECRET_KEY": strong(),
            "JWT_SIGNING_KEY": strong(),
            "REDIS_URL": "",
            "ARCANA_SINGLE_HOST": "true",
            "CACHE_DIR": str(tmp_path),
        },
        "shell",
        "-c",
        code,
    )
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.split() == ["django.core.cache.backends.filebased.FileBasedCache", "False"]


def test_the_default_shares_counters_through_files_and_caches_no_users(tmp_path: Path) -> None:
    code = (
        "import arcana.settings.local as s; "
        "print(s.CACHES['default']['BACKEND'], s.CACHES['default']['LOCATION'], s.USER_CACHE)"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "USER_CACHE"}}
    env["CACHE_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    backend, location, user_cache = result.stdout.split()
    assert backend == "django.core.cache.backends.filebased.FileBasedCache"
    assert location == str(tmp_path)
    assert user_cache == "False"


# Variables these tests set themselves: never inherited from the caller's environment.
SETTINGS_UNDER_TEST = {"ADMIN_SESSION_SECONDS", "API_DOCS", "NUM_PROXIES"}


def _settings_value(module: str, expression: str, **env: str) -> str:
    """``expression`` evaluated in a fresh process that imports ``module`` with ``env``."""
    code = f"import {module} as s; print({expression})"
    inherited = {key: value for key, value in os.environ.items() if key not in SETTINGS_UNDER_TEST}
    environment = {**inherited, **env}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_admin_session_lifetime_defaults_to_eight_hours() -> None:
    from django.conf import settings

    assert settings.ADMIN_SESSION_SECONDS == settings.SESSION_COOKIE_AGE == 8 * 60 * 60
    assert _settings_value("arcana.settings.base", "s.SESSION_COOKIE_AGE") == str(8 * 60 * 60)


def test_admin_session_lifetime_comes_from_the_environment() -> None:
    value = _settings_value(
        "arcana.settings.production",
        "s.SESSION_COOKIE_AGE",
        ADMIN_SESSION_SECONDS="1800",
        DJANGO_SECRET_KEY=strong(),
        JWT_SIGNING_KEY=strong(),
        REDIS_URL="redis://127.0.0.1:6379/0",  # required; importing settings never connects
    )
    assert value == "1800"


@pytest.mark.django_db
def test_admin_login_session_expires_after_admin_session_seconds() -> None:
    from django.conf import settings
    from django.test import Client

    from users.models import User

    User.objects.create_superuser(email="op@example.com", name="Op", password="an operator pass 9")
    client = Client()
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "op@example.com", "password": "an operator pass 9"},
    )
    assert response.status_code == 302
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert int(cookie["max-age"]) == settings.ADMIN_SESSION_SECONDS
    assert client.session.get_expiry_age() == settings.ADMIN_SESSION_SECONDS


def test_random_keys_pass_the_strength_check(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.management.utils import get_random_secret_key

    module: Any = _import_production(
        monkeypatch, DJANGO_SECRET_KEY=strong(), JWT_SIGNING_KEY=strong()
    )
    generators = [
        strong,  # what README and the error message tell operators to run
        lambda: secrets.token_urlsafe(24),  # the shortest random key allowed: 32 characters
        lambda: secrets.token_hex(32),
        get_random_secret_key,
    ]
    for generate in generators:
        for _ in range(300):
            value = generate()
            assert module.require_strong_key("KEY", value) == value


def test_key_entropy_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    module: Any = _import_production(
        monkeypatch, DJANGO_SECRET_KEY=strong(), JWT_SIGNING_KEY=strong()
    )
    threshold = module.MIN_KEY_ENTROPY_BITS
    assert module.key_entropy_bits(strong()) > 2 * threshold
    assert module.key_entropy_bits("abcdefgh" * 4) < threshold / 4  # one step, repeated
    assert module.key_entropy_bits("0123456789" * 4) < threshold / 4
    assert module.key_repeats("abcdefgh" * 4)
    assert not module.key_repeats(strong())


def _production_value(expression: str, **env: str) -> str:
    return _settings_value(
        "arcana.settings.production",
        expression,
        DJANGO_SECRET_KEY=strong(),
        JWT_SIGNING_KEY=strong(),
        REDIS_URL="redis://127.0.0.1:6379/0",
        **env,
    )


def test_api_docs_default_to_public_in_development_and_admin_in_production() -> None:
    from django.conf import settings

    assert settings.API_DOCS == "public"  # test settings
    assert _settings_value("arcana.settings.local", "s.API_DOCS") == "public"
    assert _production_value("s.API_DOCS") == "admin"
    assert _production_value("s.API_DOCS", API_DOCS="off") == "off"
    assert _production_value("s.API_DOCS", API_DOCS=" Public ") == "public"


def test_unknown_api_docs_mode_refuses_to_start() -> None:
    result = run_production(
        {"DJANGO_SECRET_KEY": strong(), "JWT_SIGNING_KEY": strong(), "API_DOCS": "private"},
        "check",
    )
    assert result.returncode != 0
    assert "API_DOCS must be one of public, admin, off." in result.stderr


def test_forwarded_proto_is_trusted_only_behind_a_declared_proxy() -> None:
    assert _production_value("s.__dict__.get('SECURE_PROXY_SSL_HEADER')") == "None"
    assert _production_value("s.__dict__.get('SECURE_PROXY_SSL_HEADER')", NUM_PROXIES="0") == "None"
    assert _production_value("s.SECURE_PROXY_SSL_HEADER", NUM_PROXIES="1") == str(
        ("HTTP_X_FORWARDED_PROTO", "https")
    )


def test_sqlite_takes_the_write_lock_at_begin_and_waits_for_it() -> None:
    # make run's REST, gRPC and mail-worker processes share one SQLite file: a
    # deferred read-then-write transaction failed at once as "database is
    # locked" (a 503) while another process wrote.
    from arcana.settings.base import _tune_database

    tuned = _tune_database({"ENGINE": "django.db.backends.sqlite3", "NAME": "x.sqlite3"})
    assert tuned["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert tuned["OPTIONS"]["timeout"] == 20


@pytest.mark.parametrize(
    ("url", "worker", "expected"),
    [
        ("redis://127.0.0.1:6379/15", "gw0", "redis://127.0.0.1:6379/15"),
        ("redis://127.0.0.1:6379/15", "gw1", "redis://127.0.0.1:6379/14"),
        ("redis://:pw@cache:6380/0", "gw1", "redis://:pw@cache:6380/15"),
        ("redis://127.0.0.1:6379", "gw2", "redis://127.0.0.1:6379/14"),
    ],
)
def test_each_test_process_has_its_own_redis_database(url: str, worker: str, expected: str) -> None:
    from arcana.settings.test import _worker_redis_url

    assert _worker_redis_url(url, worker) == expected
