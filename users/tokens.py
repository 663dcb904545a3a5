"""The tokens in account-mail links: Django's ``PasswordResetTokenGenerator``
(HMAC with SECRET_KEY, a timestamp, ``PASSWORD_RESET_TIMEOUT``) over what
must change for a link to die.

Each kind has its own salt, so a reset token never verifies an address and
a verification token never resets a password.

- reset: over the password hash, so the link works once (the reset changes
  the hash) and dies with any other password change;
- verification: over the address, the pending address and the verified
  flag, so it works once and dies when the address it was sent to is
  no longer the one waiting for confirmation.

They hash records (``users.records``), not models: the service tier, which
checks them, holds no database.
"""

import binascii
from typing import Any, cast

from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from users.records import UserCredentials, UserRecord


class PasswordResetTokens(PasswordResetTokenGenerator):
    key_salt = "arcana.users.tokens.PasswordResetTokens"

    def _make_hash_value(self, user: Any, timestamp: int) -> str:
        credentials: UserCredentials = user
        record = credentials.user
        return f"{record.id}{credentials.password_hash}{record.email}{timestamp}"

    def token_for(self, credentials: UserCredentials) -> str:
        return self.make_token(cast(Any, credentials))

    def matches(self, credentials: UserCredentials, token: str) -> bool:
        return self.check_token(cast(Any, credentials), token)


class EmailVerificationTokens(PasswordResetTokenGenerator):
    key_salt = "arcana.users.tokens.EmailVerificationTokens"

    def _make_hash_value(self, user: Any, timestamp: int) -> str:
        record: UserRecord = user
        return f"{record.id}{record.email}{record.pending_email}{record.email_verified}{timestamp}"

    def token_for(self, user: UserRecord) -> str:
        return self.make_token(cast(Any, user))

    def matches(self, user: UserRecord, token: str) -> bool:
        return self.check_token(cast(Any, user), token)


password_reset_tokens = PasswordResetTokens()
email_verification_tokens = EmailVerificationTokens()


def uid_of(user_id: str) -> str:
    return urlsafe_base64_encode(force_bytes(user_id))


def user_id_of(uid: str) -> str | None:
    """The user id a link's ``uid`` carries, or None when it is not base64 text."""
    try:
        return force_str(urlsafe_base64_decode(uid))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
