"""Forged, tampered, expired, revoked and misused tokens all get 401."""

import base64
import json

import jwt
import pytest
from django.conf import settings
from rest_framework.test import APIClient

from authn import repository as authn_repository
from authn.tokens import ArcanaRefreshToken
from tests.conftest import client_for, decode_access, expired_token, forged_token, tokens_for
from users.models import Role, User

pytestmark = pytest.mark.django_db


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _assert_401(token: str) -> None:
    response = client_for(token=token).get("/api/v1/auth/me")
    assert response.status_code == 401, response.content
    assert set(response.json()) == {"error", "code"}


def test_valid_token_passes(user: User) -> None:
    # The control for every attack below.
    assert client_for(token=tokens_for(user).access).get("/api/v1/auth/me").status_code == 200


def test_alg_none_is_rejected(user: User) -> None:
    claims = dict(decode_access(tokens_for(user).access).payload)
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    _assert_401(token)


def test_tampered_payload_is_rejected(user: User, admin_user: User) -> None:
    header, _, signature = tokens_for(user).access.split(".")
    claims = dict(decode_access(tokens_for(user).access).payload)
    claims["roles"] = ["admin", "user"]
    claims["sub"] = str(admin_user.pk)
    _assert_401(f"{header}.{_b64(claims)}.{signature}")


def test_bad_signature_is_rejected(user: User) -> None:
    _assert_401(forged_token(user))


def test_other_algorithm_with_right_key_is_rejected(user: User) -> None:
    claims = dict(decode_access(tokens_for(user).access).payload)
    _assert_401(jwt.encode(claims, settings.JWT_SIGNING_KEY, algorithm="HS512"))


def test_expired_token_is_rejected(user: User) -> None:
    _assert_401(expired_token(user))


def test_refresh_token_used_as_access_is_rejected(user: User) -> None:
    _assert_401(tokens_for(user).refresh)


def test_garbage_and_malformed_headers(user: User) -> None:
    _assert_401("not-a-jwt")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer one two")
    assert client.get("/api/v1/auth/me").status_code == 401
    client.credentials(HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")
    assert client.get("/api/v1/auth/me").status_code == 401


def test_blacklisted_refresh_token_cannot_refresh(user: User) -> None:
    pair = tokens_for(user)
    assert authn_repository.refresh_token_revoke(jti=ArcanaRefreshToken(pair.refresh)["jti"])  # type: ignore[arg-type]
    response = APIClient().post("/api/v1/auth/refresh", {"refresh": pair.refresh}, format="json")
    assert response.status_code == 401


def test_deleted_user_token_stops_working_at_once(user: User) -> None:
    client = client_for(user)
    assert client.get("/api/v1/auth/me").status_code == 200  # now cached
    user.delete()
    assert client.get("/api/v1/auth/me").status_code == 401


def test_deactivated_user_token_stops_working_at_once(user: User) -> None:
    client = client_for(user)
    assert client.get("/api/v1/auth/me").status_code == 200
    user.is_active = False
    user.save()
    assert client.get("/api/v1/auth/me").status_code == 401


def test_role_removed_takes_effect_at_once(admin_user: User) -> None:
    client = client_for(admin_user)
    assert client.get("/api/v1/users").status_code == 200
    admin_user.roles.remove(Role.objects.get(name="admin"))
    assert client.get("/api/v1/users").status_code == 403


def test_role_granted_takes_effect_at_once(user: User) -> None:
    client = client_for(user)
    assert client.get("/api/v1/users").status_code == 403
    user.roles.add(Role.objects.get(name="admin"))
    assert client.get("/api/v1/users").status_code == 200


def test_claims_follow_the_contract(user: User) -> None:
    access = decode_access(tokens_for(user).access)
    assert access["sub"] == str(user.pk)
    assert access["roles"] == ["user"]
    assert access["token_type"] == "access"
    assert {"iat", "exp", "jti"} <= set(access.payload)
    assert jwt.get_unverified_header(str(access))["alg"] == "HS256"
    lifetime = access["exp"] - access["iat"]
    assert lifetime == 15 * 60
    refresh = ArcanaRefreshToken(tokens_for(user).refresh)  # type: ignore[arg-type]
    assert refresh["exp"] - refresh["iat"] == 7 * 24 * 3600
