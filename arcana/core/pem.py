"""Checks on the PEM files a TLS endpoint is given, before grpc sees them.

grpc reports a bad file only as a port it "cannot bind" (a server) or as
handshakes that never succeed (a client), naming neither the file nor the
fault. These checks name both, in one line.
"""

from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization


class TlsError(ValueError):
    """A TLS file that is missing, unreadable or not what it should be (one line)."""


def read_pem(what: str, path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise TlsError(f"cannot read TLS {what} {path}: {exc.strerror or exc}.") from None


def pem_certificates(what: str, path: str, pem: bytes) -> list[x509.Certificate]:
    """The certificates in ``pem`` (read from ``path``); at least one."""
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        certificates = []
    if not certificates:
        raise TlsError(f"TLS {what} {path} holds no PEM certificate.")
    return certificates


def check_private_key(*, key: str, pem: bytes, cert: str, certificate: x509.Certificate) -> None:
    """``pem`` (read from ``key``) is an unencrypted private key, the one of
    ``certificate`` (the first in ``cert``)."""
    try:
        private_key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise TlsError(f"TLS key {key} is not an unencrypted PEM private key ({exc}).") from None
    if _public_der(private_key.public_key()) != _public_der(certificate.public_key()):
        raise TlsError(f"TLS key {key} does not belong to the certificate in {cert}.")


def _public_der(key: Any) -> bytes:
    der: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der
