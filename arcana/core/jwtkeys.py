"""Asymmetric JWT keys: loading, checking, and publishing them as JWKs.

``JWT_PRIVATE_KEY`` (where tokens are minted) and ``JWT_PUBLIC_KEY`` (where
they are only verified) each hold an unencrypted PEM key, inline (the value
starts with ``-----BEGIN``; ``\\n`` escapes count as newlines) or as the path
of a PEM file. The key's type chooses the algorithm: Ed25519 → EdDSA (the
recommended one), EC P-256 → ES256, RSA of 2048 bits or more → RS256.

This module reads no Django settings; the settings call :func:`load_jwt_keys`.
"""

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.core.exceptions import ImproperlyConfigured
from jwt.algorithms import get_default_algorithms

PRIVATE = "JWT_PRIVATE_KEY"
PUBLIC = "JWT_PUBLIC_KEY"
MIN_RSA_BITS = 2048
_KINDS = "an Ed25519, EC P-256 or RSA (2048 bits or more) key"

# RFC 7638 §3.2 (EC, RSA) and RFC 8037 §2 (OKP): the members a thumbprint hashes.
THUMBPRINT_MEMBERS: dict[str, tuple[str, ...]] = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
}


@dataclass(frozen=True, slots=True)
class JwtKeys:
    """A checked key pair as simplejwt takes it: PEM text, the algorithm.

    ``private_pem`` is ``None`` in a process that only verifies tokens.
    """

    algorithm: str
    public_pem: str
    private_pem: str | None = field(default=None, repr=False)


def _pem(name: str, raw: str) -> bytes:
    """The PEM bytes of an inline value or of the file it names."""
    if raw.lstrip().startswith("-----BEGIN"):
        # One-line environments (.env files, some orchestrators) escape newlines.
        return raw.strip().replace("\\n", "\n").encode()
    try:
        return Path(raw).read_bytes()
    except OSError as exc:
        raise ImproperlyConfigured(
            f"{name} is neither PEM text nor a readable file ({raw}: {exc.strerror})."
        ) from None


def _algorithm(name: str, key: Any) -> str:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "EdDSA"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and isinstance(
        key.curve, ec.SECP256R1
    ):
        return "ES256"
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS:
        return "RS256"
    raise ImproperlyConfigured(f"{name} must be {_KINDS}.")


def _public_pem(key: Any) -> str:
    data: bytes = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data.decode()


def load_jwt_keys(*, private: str, public: str) -> JwtKeys | None:
    """The configured key pair, or ``None`` (HS256 with ``JWT_SIGNING_KEY``).

    A private key alone is enough: its public half is derived. Both given,
    they must be halves of one pair. Anything else raises
    ``ImproperlyConfigured`` with one line naming the variable.
    """
    private, public = private.strip(), public.strip()
    if not private and not public:
        return None
    public_key: Any = None
    if public:
        try:
            public_key = serialization.load_pem_public_key(_pem(PUBLIC, public))
        except (ValueError, UnsupportedAlgorithm):
            raise ImproperlyConfigured(f"{PUBLIC} is not a PEM public key.") from None
        algorithm = _algorithm(PUBLIC, public_key)
    if not private:
        return JwtKeys(algorithm=algorithm, public_pem=_public_pem(public_key))
    try:
        private_key: Any = serialization.load_pem_private_key(_pem(PRIVATE, private), None)
    except TypeError:
        raise ImproperlyConfigured(f"{PRIVATE} must not be encrypted.") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ImproperlyConfigured(f"{PRIVATE} is not a PEM private key.") from None
    algorithm = _algorithm(PRIVATE, private_key)
    derived = _public_pem(private_key.public_key())
    if public_key is not None and _public_pem(public_key) != derived:
        raise ImproperlyConfigured(
            f"{PUBLIC} does not match {PRIVATE}: it is not that private key's public half."
        )
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return JwtKeys(algorithm=algorithm, public_pem=derived, private_pem=private_pem)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK, base64url-encoded."""
    members = THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def public_jwk(public_pem: str, algorithm: str) -> dict[str, str]:
    """The public key as a JWK for signature checks, ``kid`` its thumbprint."""
    key = serialization.load_pem_public_key(public_pem.encode())
    full: Mapping[str, Any] = get_default_algorithms()[algorithm].to_jwk(key, as_dict=True)
    jwk = {name: str(full[name]) for name in THUMBPRINT_MEMBERS[full["kty"]]}
    return {**jwk, "alg": algorithm, "use": "sig", "kid": jwk_thumbprint(jwk)}
