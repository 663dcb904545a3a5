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
