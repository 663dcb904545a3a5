"""The log scanner that guards the whole session can see what it must."""

import logging

from tests.conftest import tokens_for
from tests.secret_scan import SecretScanner, find_secret


def test_finds_passwords_hashes_and_tokens() -> None:
    assert find_secret("login failed for correct horse battery staple") is not None
    assert find_secret("hash argon2$argon2id$v=19$m=256") is not None
    assert find_secret("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sig") is not None
    assert find_secret("Unauthorized: /api/v1/auth/me") is None


def test_scanner_records_a_leak_without_failing_the_session(user: object) -> None:
    scanner = SecretScanner()
    logger = logging.getLogger("tests.scanner-probe")
    logger.addHandler(scanner)
    logger.propagate = False  # keep the planted token away from the session's scanner
    try:
        logger.warning("token %s", tokens_for(user).access)  # type: ignore[arg-type]
    finally:
        logger.removeHandler(scanner)
    assert len(scanner.leaks) == 1
