# Sourced by scripts/tier.sh and scripts/service.sh (layered and microservices
# mode on one machine): make the development Ed25519 key pair that signs and
# verifies access tokens, once per checkout, in $keys (.dev-keys/, git-ignored).
# Expects $PY (the venv's python); sets $keys.
keys=.dev-keys
if [ ! -f "$keys/jwt-ed25519.pem" ]; then
  mkdir -p "$keys" && chmod 700 "$keys"
  "$PY" - "$keys" <<'PYTHON'
import pathlib, sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

root = pathlib.Path(sys.argv[1])
key = Ed25519PrivateKey.generate()
private = root / "jwt-ed25519.pem"
private.write_bytes(key.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
private.chmod(0o600)
(root / "jwt-ed25519.pub.pem").write_bytes(key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
PYTHON
fi
