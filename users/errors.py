"""Errors of the users domain."""

from arcana.exceptions import Conflict, NotFound


class UserNotFound(NotFound):
    code = "user_not_found"
    default_message = "User not found."


class EmailTaken(Conflict):
    code = "email_taken"
    default_message = "A user with this email already exists."
