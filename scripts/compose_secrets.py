"""Development secrets for the compose files: ``python scripts/compose_secrets.py [DIR]``.

Writes what docker/compose.*.yml mount with ``secrets:`` into DIR (default
docker/secrets/, git- and docker-ignored): random keys and database
passwords, the database URLs that carry them, an Ed25519 JWT key pair, and a
throwaway CA with one internal-TLS certificate per layered tier and per
microservice. Files that exist are kept (a password must keep matching the
database volume made with it): delete DIR, and the volumes (``docker-compose
down -v``), to start over. Needs ``cryptography`` (in requirements.txt):
run it with .venv/bin/python, or inside the image (README, "Docker Compose").

The directory is private (0700); the files in it are 0644 because compose
without Swarm bind-mounts a secret with its host owner and mode, and the
containers' users (uid 10001 for Arcana, 999 for MySQL) must read it.
"""

import argparse
import datetime
import ipaddress
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "docker" / "secrets"
MYSQL_HOST = "mysql:3306"  # the MySQL service of every compose file
# (database and user, secret holding its password, secret holding its URL)
DATABASES = (
    ("arcana", "mysql_password", "database_url"),  # monolithic and layered
    ("users", "users_db_password", "users_database_url"),  # microservices
    ("auth", "auth_db_password", "auth_database_url"),
)
# Internal TLS: the certificate of each process group, by the compose
# service names it answers to as a server (every one is also a client).
TLS_NAMES = {
    "controller": (),  # the layered controller only calls
    "service": ("service",),
    "repository": ("repository",),
    "users": ("users-tier",),
    "auth": ("auth-tier",),
}
VALIDITY = datetime.timedelta(days=825)


def token() -> str:
    # URL-safe characters only: it goes into database URLs and SQL literals.
    return secrets.token_urlsafe(48)


class Writer:
    """Writes files into one directory, keeping those that exist."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.written: list[str] = []

    def missing(self, *names: str) -> bool:
        return not all((self.directory / name).exists() for name in names)

    def write(self, name: str, content: str | bytes) -> None:
        path = self.directory / name
        data = content.encode() if isinstance(content, str) else content
        path.write_bytes(data)
        path.chmod(0o644)  # see the module docstring
        self.written.append(name)

    def once(self, name: str, make: Callable[[], str | bytes]) -> None:
        if self.missing(name):
            self.write(name, make())


def _pem_key(key: ec.EllipticCurvePrivateKey | Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    hosts: Sequence[str] = (),
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer or (name, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )
    if issuer is None:  # the CA
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=0), critical=True
        ).add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        # localhost / 127.0.0.1: the container's own health check dials itself.
        alt_names: list[x509.GeneralName] = [
            x509.DNSName(host) for host in (*hosts, subject, "localhost")
        ]
        alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        builder = (
            builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _internal_tls(out: Writer) -> None:
    files = ["internal_ca.pem"]
    for group in TLS_NAMES:
        files += [f"tls_{group}.pem", f"tls_{group}.key"]
    if not out.missing(*files):
        return
    # One set, made together: certificates from an older CA would not verify.
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Arcana compose development CA", ca_key, None)
    out.write("internal_ca.pem", ca.public_bytes(serialization.Encoding.PEM))
    for group, hosts in TLS_NAMES.items():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(f"arcana-{group}", key, (ca.subject, ca_key), hosts)
        out.write(f"tls_{group}.pem", cert.public_bytes(serialization.Encoding.PEM))
        out.write(f"tls_{group}.key", _pem_key(key))
    # The CA's key is not kept: nothing more can be signed with it.


def generate(directory: Path) -> list[str]:
    """Create what is missing in ``directory``; return the names written."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    out = Writer(directory)
    out.once("django_secret_key", token)
    out.once("jwt_signing_key", token)  # monolithic: HS256
    out.once("mysql_root_password", token)
    for database, password_name, url_name in DATABASES:
        if out.missing(password_name, url_name):
            password = token()
            out.write(password_name, password)
            out.write(url_name, f"mysql://{database}:{password}@{MYSQL_HOST}/{database}")
    if out.missing("jwt_private_key.pem", "jwt_public_key.pem"):  # layered, microservices
        key = Ed25519PrivateKey.generate()
        out.write("jwt_private_key.pem", _pem_key(key))
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        out.write("jwt_public_key.pem", public)
    _internal_tls(out)
    return out.written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Development secrets for docker/compose.*.yml.")
    parser.add_argument("directory", nargs="?", type=Path, default=DEFAULT_DIR)
    directory = parser.parse_args(argv).directory
    written = generate(directory)
    if written:
        print(f"{directory}: wrote {', '.join(written)}")
    else:
        print(f"{directory}: every secret is already there")
    return 0


if __name__ == "__main__":
    sys.exit(main())
