"""Throwaway key pairs for asymmetric JWTs, and SIMPLE_JWT settings that use them."""

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.conf import settings

from arcana.core.jwtkeys import JwtKeys, load_jwt_keys

KINDS = ("ed25519", "p256", "rsa")


def private_key(kind: str) -> Any:
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    bits = 1024 if kind == "rsa1024" else 2048
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_pem(key: Any, password: bytes | None = None) -> str:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    pem: bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return pem.decode()


def public_pem(key: Any) -> str:
    pem: bytes = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode()


def key_pair(kind: str = "ed25519") -> JwtKeys:
    keys = load_jwt_keys(private=private_pem(private_key(kind)), public="")
    assert keys is not None
    return keys


def simple_jwt(keys: JwtKeys, *, verify_only: bool = False) -> dict[str, Any]:
    """The project's SIMPLE_JWT, signing with ``keys`` (or only verifying)."""
    return {
        **settings.SIMPLE_JWT,
        "ALGORITHM": keys.algorithm,
        "SIGNING_KEY": None if verify_only else keys.private_pem,
        "VERIFYING_KEY": keys.public_pem,
    }


_LAYERED_KEY = ed25519.Ed25519PrivateKey.generate()


def tier_keys(tier: str) -> dict[str, str]:
    """The JWT key a layered-mode tier holds, as environment (the settings
    refuse any other): the private key for the service tier, the public key
    at the controller, none for the repository tier."""
    if tier == "service":
        return {"JWT_PRIVATE_KEY": private_pem(_LAYERED_KEY)}
    if tier == "controller":
        return {"JWT_PUBLIC_KEY": public_pem(_LAYERED_KEY)}
    return {}
