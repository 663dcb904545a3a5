"""JWT_PRIVATE_KEY / JWT_PUBLIC_KEY: loading, checking, thumbprints and JWKs."""

from pathlib import Path

import jwt
import pytest
from django.core.exceptions import ImproperlyConfigured

from arcana.core.jwtkeys import jwk_thumbprint, load_jwt_keys, public_jwk
from tests.jwtkeys import KINDS, key_pair, private_key, private_pem, public_pem

ALGORITHMS = {"ed25519": "EdDSA", "p256": "ES256", "rsa": "RS256"}


# --- thumbprints: the RFCs' own examples ------------------------------------------------


def test_thumbprint_of_rfc_7638_example() -> None:
    jwk = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6t"
        "Soc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YG"
        "jQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-b"
        "FTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_thumbprint_of_rfc_8037_example() -> None:
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert jwk_thumbprint(jwk) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


# --- loading ----------------------------------------------------------------------------


def test_no_keys_means_hs256() -> None:
    assert load_jwt_keys(private="", public="  ") is None


@pytest.mark.parametrize("kind", KINDS)
def test_the_key_type_picks_the_algorithm_and_the_public_half_is_derived(kind: str) -> None:
    key = private_key(kind)
    keys = load_jwt_keys(private=private_pem(key), public="")
    assert keys is not None
    assert keys.algorithm == ALGORITHMS[kind]
    assert keys.public_pem == public_pem(key)
    assert keys.private_pem == private_pem(key)


@pytest.mark.parametrize("kind", KINDS)
def test_a_matching_pair_is_accepted(kind: str) -> None:
    key = private_key(kind)
    keys = load_jwt_keys(private=private_pem(key), public=public_pem(key))
    assert keys is not None
    assert (keys.algorithm, keys.public_pem) == (ALGORITHMS[kind], public_pem(key))


def test_a_public_key_alone_only_verifies() -> None:
    key = private_key("ed25519")
    keys = load_jwt_keys(private="", public=public_pem(key))
    assert keys is not None
    assert (keys.algorithm, keys.public_pem, keys.private_pem) == ("EdDSA", public_pem(key), None)


@pytest.mark.parametrize("other", ["ed25519", "p256"])
def test_a_public_key_of_another_pair_is_refused(other: str) -> None:
    with pytest.raises(ImproperlyConfigured) as caught:
        load_jwt_keys(
            private=private_pem(private_key("ed25519")), public=public_pem(private_key(other))
        )
    assert str(caught.value) == (
        "JWT_PUBLIC_KEY does not match JWT_PRIVATE_KEY: it is not that private key's public half."
    )


def test_keys_may_be_files(tmp_path: Path) -> None:
    key = private_key("ed25519")
    (tmp_path / "jwt.key").write_text(private_pem(key))
    (tmp_path / "jwt.pub").write_text(public_pem(key))
    keys = load_jwt_keys(private=str(tmp_path / "jwt.key"), public=str(tmp_path / "jwt.pub"))
    assert keys is not None
    assert keys.private_pem == private_pem(key)


def test_inline_keys_may_escape_their_newlines() -> None:
    key = private_key("ed25519")
    one_line = private_pem(key).replace("\n", "\\n")
    assert "\n" not in one_line
    keys = load_jwt_keys(private=one_line, public="")
    assert keys is not None
    assert keys.public_pem == public_pem(key)


def test_the_private_key_stays_out_of_repr() -> None:
    keys = key_pair()
    assert keys.private_pem is not None
    assert "PRIVATE" not in repr(keys)


@pytest.mark.parametrize(
    ("private", "public", "message"),
    [
        ("/no/such/jwt.key", "", "JWT_PRIVATE_KEY is neither PEM text nor a readable file"),
        ("", "/no/such/jwt.pub", "JWT_PUBLIC_KEY is neither PEM text nor a readable file"),
        ("-----BEGIN PRIVATE KEY-----\ngarbage\n", "", "JWT_PRIVATE_KEY is not a PEM private key."),
        ("PUBLIC", "", "JWT_PRIVATE_KEY is not a PEM private key."),
        ("", "PRIVATE", "JWT_PUBLIC_KEY is not a PEM public key."),
        ("ENCRYPTED", "", "JWT_PRIVATE_KEY must not be encrypted."),
        (
            "P384",
            "",
            "JWT_PRIVATE_KEY must be an Ed25519, EC P-256 or RSA (2048 bits or more) key.",
        ),
        (
            "RSA1024",
            "",
            "JWT_PRIVATE_KEY must be an Ed25519, EC P-256 or RSA (2048 bits or more) key.",
        ),
        ("", "P384", "JWT_PUBLIC_KEY must be an Ed25519, EC P-256 or RSA (2048 bits or more) key."),
    ],
)
def test_unusable_keys_are_refused(private: str, public: str, message: str) -> None:
    ed = private_key("ed25519")
    stand_ins = {
        "PUBLIC": public_pem(ed),
        "PRIVATE": private_pem(ed),
        "ENCRYPTED": private_pem(ed, password=b"a passphrase"),
        "P384": private_pem(private_key("p384")),
        "RSA1024": private_pem(private_key("rsa1024")),
    }
    if public == "P384":
        public = public_pem(private_key("p384"))
    with pytest.raises(ImproperlyConfigured) as caught:
        load_jwt_keys(private=stand_ins.get(private, private), public=stand_ins.get(public, public))
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


# --- the published JWK ------------------------------------------------------------------

MEMBERS = {
    "ed25519": {"kty", "crv", "x"},
    "p256": {"kty", "crv", "x", "y"},
    "rsa": {"kty", "n", "e"},
}


@pytest.mark.parametrize("kind", KINDS)
def test_public_jwk_verifies_the_private_keys_signatures(kind: str) -> None:
    keys = key_pair(kind)
    jwk = public_jwk(keys.public_pem, keys.algorithm)
    assert set(jwk) == MEMBERS[kind] | {"alg", "use", "kid"}
    assert (jwk["alg"], jwk["use"]) == (keys.algorithm, "sig")
    assert jwk["kid"] == jwk_thumbprint(jwk)
    token = jwt.encode({"sub": "someone"}, keys.private_pem, algorithm=keys.algorithm)  # type: ignore[arg-type]
    verifier = jwt.PyJWK(jwk)
    assert jwt.decode(token, verifier.key, algorithms=[verifier.algorithm_name]) == {
        "sub": "someone"
    }
