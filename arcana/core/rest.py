"""Small helpers every REST controller uses."""

from collections.abc import Mapping
from typing import Any, TypeVar

from django.http import HttpRequest, JsonResponse
from rest_framework import serializers
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from arcana.core.principal import Principal, as_kind

T = TypeVar("T")


def validated(serializer_class: type[serializers.Serializer[Any]], data: Any) -> dict[str, Any]:
    """Validate ``data`` (raising DRF's 400) and return the clean values."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    result: Mapping[str, Any] = serializer.validated_data
    return dict(result)


def principal_of(request: Request) -> Principal:
    user = request.user
    if not isinstance(user, Principal):
        raise NotAuthenticated()
    return user


def caller_of(request: Request, kind: type[T]) -> T:
    """What the authenticator returned for this request, as a ``kind``
    (``authn.services.Authenticated``)."""
    return as_kind(principal_of(request).auth, kind)


def actor_of(request: Request, kind: type[T]) -> T:
    """Who is asking, as a ``kind`` (``users.records.Actor``)."""
    return as_kind(principal_of(request).actor, kind)


def client_of(request: Request | HttpRequest) -> str:
    """The client's address as the throttles see it: ``REMOTE_ADDR``, or the
    ``X-Forwarded-For`` entry ``NUM_PROXIES`` trusted proxies put in front."""
    # get_ident reads only ``request.META``, which Django's requests have too.
    ident: str | None = BaseThrottle().get_ident(request)  # type: ignore[arg-type]
    return ident or "unknown"


def error_body(message: str, code: str) -> dict[str, str]:
    """The contract's body for every error but validation: ``{"error", "code"}``."""
    return {"error": message, "code": code}


def error_json(status: int, message: str, code: str) -> JsonResponse:
    return JsonResponse(error_body(message, code), status=status)
