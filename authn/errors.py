"""Errors of the authentication domain.

REST and gRPC raise these same errors for the same failures, so a client sees
one machine ``code`` per failure on both transports.
"""

from arcana.core.exceptions import Forbidden, NotFound, Unauthenticated


class InvalidCredentials(Unauthenticated):
    code = "invalid_credentials"
    default_message = "Invalid email or password."


class TokenInvalid(Unauthenticated):
    code = "token_not_valid"
    default_message = "Token is invalid or expired."


class CredentialsMissing(Unauthenticated):
    """No bearer credentials at all (no header, an empty one, another scheme).

    Code and message are DRF's ``NotAuthenticated``, which REST raises here.
    """

    code = "not_authenticated"
    default_message = "Authentication credentials were not provided."


class AuthorizationHeaderInvalid(Unauthenticated):
    """``Bearer`` with no token, or with more than one part after it."""

    code = "bad_authorization_header"
    default_message = "Authorization header must contain two space-delimited values."


class SessionNotFound(NotFound):
    """No live session of the caller by that id (also for another user's)."""

    code = "session_not_found"
    default_message = "Session not found."


class EmailNotVerified(Forbidden):
    """Right password, but REQUIRE_EMAIL_VERIFICATION is on and the address
    was never confirmed (told only to whoever knows the password)."""

    code = "email_not_verified"
    default_message = (
        "Confirm your email address first: follow the link we sent you "
        "(POST /api/v1/auth/verify-email/resend sends a new one)."
    )
