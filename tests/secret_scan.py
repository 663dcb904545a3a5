"""Watches every log record of the test session for secrets.

Passwords used by the suite, password hashes and JWTs must never reach a log
line; the session fails at the end if one did (see conftest).
"""

import logging
import re

from tests.factories import DEFAULT_PASSWORD

# Every password literal the suite sends; keep in sync when adding tests.
KNOWN_PASSWORDS = (
    DEFAULT_PASSWORD,
    "a long and unusual passphrase 42",
    "an operator chosen passphrase 7",
    "not the password",
    "wrong password!",
    "wrong wrong wrong",
    "whatever-123",
)
PATTERNS = (
    re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}"),  # a JWT header.payload
    re.compile(r"argon2\$|\$argon2id?\$|pbkdf2_sha256\$|scrypt\$"),  # a Django password hash
)

WATCHED_LOGGERS = ("", "django", "grpc", "arcana", "granian", "granian.access")


def find_secret(text: str) -> str | None:
    for password in KNOWN_PASSWORDS:
        if password in text:
            return f"password {password!r}"
    for pattern in PATTERNS:
        match = pattern.search(text)
        if match:
            return f"{pattern.pattern!r} ({match.group(0)[:12]}...)"
    return None


class SecretScanner(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a broken record is not our concern here
            return
        found = find_secret(text)
        if found:
            self.leaks.append(f"{record.name}: {found}")

    def install(self) -> None:
        for name in WATCHED_LOGGERS:
            logging.getLogger(name).addHandler(self)
