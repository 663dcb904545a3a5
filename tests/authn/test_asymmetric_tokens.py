"""Asymmetric JWTs: minted with the private key, verified with the public key
alone, published at /.well-known/jwks.json; HS256 stays the default."""

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from django.core.exceptions import ImproperlyConfigured
from rest_framework.test import APIClient

from arcana.core.jwtkeys import JwtKeys, jwk_thumbprint
from authn.tokens import ArcanaRefreshToken, access_claims, published_jwks, token_backend
from tests.conftest import client_for, tokens_for
from tests.factories import DEFAULT_PASSWORD
from tests.jwtkeys import KINDS, key_pair, simple_jwt
from users.models import User

pytestmark = pytest.mark.django_db

JWKS = "/.well-known/jwks.json"


@pytest.fixture
def keys() -> JwtKeys:
    return key_pair("ed25519")


@pytest.fixture
def asymmetric(settings: Any, keys: JwtKeys) -> JwtKeys:
    """This process signs with ``keys`` (pytest-django's settings send setting_changed)."""
    settings.SIMPLE_JWT = simple_jwt(keys)
    return keys


def _header(token: str) -> dict[str, Any]:
    return jwt.get_unverified_header(token)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def login(client: APIClient, user: User) -> dict[str, Any]:
    response = client.post(
        "/api/v1/auth/login", {"email": user.email, "password": DEFAULT_PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


# --- HS256 stays the default ------------------------------------------------------------


def test_default_tokens_are_hs256_without_a_kid(user: User) -> None:
    header = _header(tokens_for(user).access)
    assert header["alg"] == "HS256"
    assert "kid" not in header
    assert published_jwks() is None


def test_jwks_is_not_found_with_hs256(anon_client: APIClient) -> None:
    response = anon_client.get(JWKS)
    assert response.status_code == 404
    assert response.json() == {
        "error": "No public key: tokens are signed with a shared secret (HS256).",
        "code": "not_found",
    }


# --- minting and verifying --------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_tokens_minted_with_the_private_key_verify_with_only_the_public_key(
    settings: Any, user: User, kind: str
) -> None:
    keys = key_pair(kind)
    settings.SIMPLE_JWT = simple_jwt(keys)
    pair = tokens_for(user)
    header = _header(pair.access)
    assert header["alg"] == keys.algorithm
    assert header["kid"] == published_jwks()["keys"][0]["kid"]  # type: ignore[index]
    assert _header(pair.refresh)["kid"] == header["kid"]

    settings.SIMPLE_JWT = simple_jwt(keys, verify_only=True)
    assert token_backend().signing_key is None
    assert access_claims(pair.access).user_id == str(user.pk)
    assert ArcanaRefreshToken(pair.refresh)["sub"] == str(user.pk)  # type: ignore[arg-type]


def test_a_verifier_cannot_mint(settings: Any, keys: JwtKeys, user: User) -> None:
    settings.SIMPLE_JWT = simple_jwt(keys, verify_only=True)
    with pytest.raises(ImproperlyConfigured, match="verifies tokens and cannot mint them"):
        tokens_for(user)


def test_tokens_of_another_key_are_refused(settings: Any, asymmetric: JwtKeys, user: User) -> None:
    foreign = tokens_for(user).access
    settings.SIMPLE_JWT = simple_jwt(key_pair("ed25519"))
    response = client_for(token=foreign).get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_hs256_tokens_stop_working_when_the_key_pair_takes_over(
    settings: Any, keys: JwtKeys, user: User
) -> None:
    old = tokens_for(user).access
    settings.SIMPLE_JWT = simple_jwt(keys)
    assert client_for(token=old).get("/api/v1/auth/me").status_code == 401


def test_algorithm_confusion_is_refused(asymmetric: JwtKeys, user: User) -> None:
    """An HS256 token whose HMAC key is the *public* key (RFC 8725 §2.1)."""
    claims = jwt.decode(
        tokens_for(user).access, options={"verify_signature": False}, algorithms=["EdDSA"]
    )
    claims["roles"] = ["admin", "user"]
    signing_input = ".".join(
        _b64(json.dumps(part).encode()) for part in ({"alg": "HS256", "typ": "JWT"}, claims)
    )
    mac = hmac.new(asymmetric.public_pem.encode(), signing_input.encode(), hashlib.sha256)
    forged = f"{signing_input}.{_b64(mac.digest())}"
    assert client_for(token=forged).get("/api/v1/auth/me").status_code == 401


# --- REST, end to end -------------------------------------------------------------------


def test_rest_login_me_refresh_with_a_key_pair(
    asymmetric: JwtKeys, anon_client: APIClient, user: User
) -> None:
    body = login(anon_client, user)
    assert _header(body["access"])["alg"] == "EdDSA"
    me = client_for(token=body["access"]).get("/api/v1/auth/me")
    assert me.status_code == 200
    assert me.json()["id"] == str(user.pk)

    refreshed = anon_client.post(
        "/api/v1/auth/refresh", {"refresh": body["refresh"]}, format="json"
    )
    assert refreshed.status_code == 200
    again = client_for(token=refreshed.json()["access"]).get("/api/v1/auth/me")
    assert again.status_code == 200
    # Rotation and reuse detection work on these tokens too.
    reused = anon_client.post("/api/v1/auth/refresh", {"refresh": body["refresh"]}, format="json")
    assert reused.status_code == 401


# --- the JWK Set ------------------------------------------------------------------------


def test_jwks_publishes_the_public_key(
    asymmetric: JwtKeys, anon_client: APIClient, user: User
) -> None:
    response = anon_client.get(JWKS)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert set(response["Cache-Control"].split(", ")) == {"public", "max-age=300"}
    body = response.json()
    assert list(body) == ["keys"]
    [key] = body["keys"]
    assert set(key) == {"kty", "crv", "x", "alg", "use", "kid"}  # no "d": nothing private
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert key["kid"] == jwk_thumbprint(key)

    # A verifier with nothing but the served set checks a real token.
    token = login(anon_client, user)["access"]
    served = jwt.PyJWKSet.from_dict(body)[_header(token)["kid"]]
    claims = jwt.decode(token, served.key, algorithms=[served.algorithm_name])
    assert claims["sub"] == str(user.pk)
    assert claims["token_type"] == "access"


def test_jwks_answers_get_and_head_only(asymmetric: JwtKeys) -> None:
    client = APIClient(enforce_csrf_checks=True)
    refused = client.post(JWKS, {"keys": []}, format="json")
    assert refused.status_code == 405
    assert refused["Allow"] == "GET, HEAD"
    assert refused.json() == {"error": 'Method "POST" not allowed.', "code": "method_not_allowed"}
    assert client.head(JWKS).status_code == 200


def test_jwks_ignores_bad_credentials(asymmetric: JwtKeys) -> None:
    """A public document: a stale or junk Authorization header does not make it 401."""
    response = client_for(token="junk").get(JWKS)
    assert response.status_code == 200
