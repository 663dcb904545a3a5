"""The one place where an exception becomes a gRPC status.

Domain errors map by ``kind`` through ``arcana.errors.GRPC_STATUS_BY_KIND``,
the same table REST's statuses come from. Besides the status, clients get
trailing metadata:

- ``arcana-error-code``: the machine code REST puts in ``{"code": ...}``;
- ``arcana-errors-bin``: for invalid input, the field errors REST puts in
  ``{"errors": {...}}``, as UTF-8 JSON;
- ``retry-after``: seconds to wait, when throttled.

Anything unexpected is logged with its traceback and answered ``INTERNAL``
without details, never ``UNKNOWN``.
"""

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from rest_framework import exceptions as drf_exceptions

from arcana.core.exceptions import (
    DATABASE_DOWN_ERRORS,
    ApplicationError,
    InvalidInput,
    Throttled,
    database_error_as_domain,
)
from arcana.errors import (
    GRPC_STATUS_BY_KIND,
    HTTP_STATUS_BY_KIND,
    drf_error_code,
    drf_error_message,
    flat_field_errors,
)

logger = logging.getLogger("arcana.grpc")

ERROR_CODE_KEY = "arcana-error-code"
FIELD_ERRORS_KEY = "arcana-errors-bin"
RETRY_AFTER_KEY = "retry-after"

_KIND_BY_HTTP_STATUS = {status: kind for kind, status in HTTP_STATUS_BY_KIND.items()}

Metadata = tuple[tuple[str, str | bytes], ...]


@dataclass(frozen=True, slots=True)
class RpcFailure:
    """What the client sees: status code, details and trailing metadata."""

    code: grpc.StatusCode
    details: str
    trailing_metadata: Metadata = ()


def _flatten(errors: Any, prefix: str = "") -> list[str]:
    """``{"email": ["Enter a valid email address."]}`` -> ``["email: Enter ..."]``."""
    if isinstance(errors, Mapping):
        lines: list[str] = []
        for field, nested in errors.items():
            lines += _flatten(nested, f"{prefix}.{field}" if prefix else str(field))
        return lines
    if isinstance(errors, list | tuple):
        return [line for item in errors for line in _flatten(item, prefix)]
    return [f"{prefix}: {errors}" if prefix else str(errors)]


def _failure(
    *,
    kind: str,
    message: str,
    code: str,
    errors: Mapping[str, Any] | None = None,
    wait: float | None = None,
) -> RpcFailure:
    metadata: list[tuple[str, str | bytes]] = [(ERROR_CODE_KEY, code)]
    details = message
    if errors is not None:
        details = f"{message} " + "; ".join(_flatten(errors))
        metadata.append((FIELD_ERRORS_KEY, json.dumps(errors).encode()))
    if wait is not None:
        metadata.append((RETRY_AFTER_KEY, str(max(1, int(wait + 0.999)))))
    status = grpc.StatusCode[GRPC_STATUS_BY_KIND.get(kind, "INTERNAL")]
    return RpcFailure(status, details, tuple(metadata))


def _application_failure(exc: ApplicationError) -> RpcFailure:
    return _failure(
        kind=exc.kind,
        message=exc.message,
        code=exc.code,
        errors=exc.errors if isinstance(exc, InvalidInput) else None,
        wait=exc.wait if isinstance(exc, Throttled) else None,
    )


def _drf_failure(exc: drf_exceptions.APIException) -> RpcFailure:
    if isinstance(exc, drf_exceptions.ValidationError):
        return _failure(
            kind="invalid",
            message=InvalidInput.default_message,
            code="invalid",
            errors=flat_field_errors(exc.detail),
        )
    return _failure(
        kind=_KIND_BY_HTTP_STATUS.get(exc.status_code, "internal"),
        message=drf_error_message(exc),
        code=drf_error_code(exc),
    )


def failure_of(exc: Exception) -> RpcFailure:
    """Translate any exception raised while serving an RPC."""
    if isinstance(exc, drf_exceptions.APIException):
        return _drf_failure(exc)
    if isinstance(exc, DATABASE_DOWN_ERRORS):
        return _application_failure(database_error_as_domain(exc))
    if isinstance(exc, ApplicationError):
        return _application_failure(exc)
    logger.error("unexpected error serving a gRPC call", exc_info=exc)
    return RpcFailure(grpc.StatusCode.INTERNAL, "Internal server error.")


def field_errors(trailing_metadata: Any) -> dict[str, Any]:
    """Client side: the field errors of a failed call (empty when there are none)."""
    for key, value in trailing_metadata or ():
        if key == FIELD_ERRORS_KEY:
            decoded: dict[str, Any] = json.loads(value)
            return decoded
    return {}
