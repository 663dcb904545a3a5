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


class InvalidCursor(ApplicationError):
    """A list cursor that was not made by this service, or was changed."""

    kind = "invalid"
    code = "invalid_cursor"
    default_message = "This cursor is not valid: use a next_cursor exactly as a list returned it."


class CursorFilterMismatch(ApplicationError):
    """A list cursor sent with other filters than the list it came from."""

    kind = "invalid"
    code = "cursor_filter_mismatch"
    default_message = (
        "This cursor was made for other filters (search, sync_status, is_active):"
        " send it with the filters of the list it came from, or start again without a cursor."
    )


class CursorWithPage(ApplicationError):
    """``cursor`` and ``page`` in one list request."""

    kind = "invalid"
    code = "cursor_with_page"
    default_message = "Send either page or cursor, not both."


class PageTooDeep(ApplicationError):
    """An offset page beyond ``USER_LIST_MAX_OFFSET``: the database would read
    and throw away every row before it."""

    kind = "invalid"
    code = "page_too_deep"
    default_message = "This page is too deep for page/size: follow next_cursor instead."
