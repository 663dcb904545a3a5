"""The one place where errors become HTTP responses (and gRPC statuses).

Bodies follow the contract: validation errors are
``400 {"errors": {"field": ["message", ...]}}``; everything else is
``{"error": "human message", "code": "machine_code"}``. No body ever carries a
traceback.
"""

import logging
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from arcana.core.exceptions import (
    DATABASE_DOWN_ERRORS,
    ApplicationError,
    InvalidInput,
    Throttled,
    database_error_as_domain,
)
from arcana.core.rest import error_body, error_json

logger = logging.getLogger("arcana.errors")

HTTP_STATUS_BY_KIND: dict[str, int] = {
    "invalid": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "throttled": 429,
    "unavailable": 503,
    "internal": 500,
}

# Names of grpc.StatusCode members, so this table imports nothing from grpc.
GRPC_STATUS_BY_KIND: dict[str, str] = {
    "invalid": "INVALID_ARGUMENT",
    "unauthenticated": "UNAUTHENTICATED",
    "forbidden": "PERMISSION_DENIED",
    "not_found": "NOT_FOUND",
    "conflict": "ALREADY_EXISTS",
    "throttled": "RESOURCE_EXHAUSTED",
    "unavailable": "UNAVAILABLE",
    "internal": "INTERNAL",
}


def application_error_body(exc: ApplicationError) -> dict[str, Any]:
    if isinstance(exc, InvalidInput):
        return {"errors": exc.errors}
    return error_body(exc.message, exc.code)


def flat_field_errors(detail: Any) -> dict[str, list[str]]:
    """DRF's validation detail in the contract's shape, ``{"field": ["message"]}``.

    DRF nests the errors of list items and nested fields
    (``{"roles": {0: ["..."]}}``); clients are promised a flat list of strings
    per field, so nested messages move up to their field, prefixed with where
    they belong (``{"roles": ["Item 0: ..."]}``).
    """
    if not isinstance(detail, Mapping):
        detail = {"non_field_errors": detail}
    return {str(field): _messages(nested) for field, nested in detail.items()}


def _messages(detail: Any, prefix: str = "") -> list[str]:
    if isinstance(detail, Mapping):
        return [
            message
            for key, nested in detail.items()
            for message in _messages(nested, f"{prefix}{_position(key)}: ")
        ]
    if isinstance(detail, list | tuple):
        return [message for item in detail for message in _messages(item, prefix)]
    return [f"{prefix}{detail}"]


def _position(key: Any) -> str:
    return f"Item {key}" if isinstance(key, int) or str(key).isdigit() else str(key)


def _application_response(exc: ApplicationError) -> Response:
    headers = {}
    if isinstance(exc, Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
    return Response(
        application_error_body(exc), status=HTTP_STATUS_BY_KIND[exc.kind], headers=headers
    )


def drf_error_message(exc: drf_exceptions.APIException) -> str:
    """The human message of a DRF error (shared with the gRPC translation)."""
    detail: Any = exc.detail
    # simplejwt puts a dict ({"detail": ..., "code": ..., "messages": [...]}) here.
    if isinstance(detail, dict):
        detail = detail.get("detail", "")
    if isinstance(detail, list):
        detail = detail[0] if detail else ""
    return str(detail)


def drf_error_code(exc: drf_exceptions.APIException) -> str:
    """The machine code of a DRF error (shared with the gRPC translation)."""
    detail: Any = exc.detail
    # In simplejwt's dict the code is a value; the dict's own codes are all the
    # exception's default ("authentication_failed").
    if isinstance(detail, dict) and "code" in detail:
        return str(detail["code"])
    codes = exc.get_codes()
    if isinstance(codes, dict):
        codes = codes.get("detail", exc.default_code)
    if isinstance(codes, list):
        codes = codes[0] if codes else exc.default_code
    return str(codes)


def drf_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: domain errors and DRF errors in contract shape."""
    if isinstance(exc, ApplicationError):
        return _application_response(exc)
    if isinstance(exc, DATABASE_DOWN_ERRORS):
        return _application_response(database_error_as_domain(exc))
    if isinstance(exc, drf_exceptions.ValidationError):
        return Response({"errors": flat_field_errors(exc.detail)}, status=400)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, drf_exceptions.APIException):
        return response  # unexpected: Django logs it and handler500 answers
    response.data = error_body(drf_error_message(exc), drf_error_code(exc))
    return response


# --- Django-level handlers (outside DRF views: admin, probes, unknown URLs) ----


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_json(400, "Bad request.", "bad_request")


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_json(403, "Forbidden.", "permission_denied")


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_json(404, "Not found.", "not_found")


def handler500(request: HttpRequest) -> HttpResponse:
    return error_json(500, "Internal server error.", "internal_error")
