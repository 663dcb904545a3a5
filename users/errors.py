"""Errors of the users domain."""

from arcana.core.exceptions import ApplicationError, Conflict, NotFound


class UserNotFound(NotFound):
    code = "user_not_found"
    default_message = "User not found."


class EmailTaken(Conflict):
    code = "email_taken"
    default_message = "A user with this email already exists."


class LastAdmin(ApplicationError):
    """A change that would leave no active admin (400 / INVALID_ARGUMENT)."""

    kind = "invalid"
    code = "last_admin"
    default_message = "This would leave no active admin."


class PasswordResetLinkInvalid(ApplicationError):
    """A reset link (uid + token) that is malformed, forged, used or expired:
    one error for all, so a link tells nothing about the account behind it."""

    kind = "invalid"
    code = "password_reset_link_invalid"
    default_message = "This password reset link is invalid or has expired."


class VerificationLinkInvalid(ApplicationError):
    """A verification link that is malformed, forged, used or expired (or
    whose address changed since it was sent)."""

    kind = "invalid"
    code = "email_verification_link_invalid"
    default_message = "This email verification link is invalid or has expired."
