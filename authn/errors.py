"""Errors of the authentication domain."""

from arcana.exceptions import Unauthenticated


class InvalidCredentials(Unauthenticated):
    code = "invalid_credentials"
    default_message = "Invalid email or password."


class TokenInvalid(Unauthenticated):
    code = "token_not_valid"
    default_message = "Token is invalid or expired."
