"""The REST floor: one plain function view, no DRF."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from bench.floor_db import user_row_json

NOT_FOUND = b'{"error": "Not found.", "code": "not_found"}'


def user_by_id(request: HttpRequest, user_id: str) -> HttpResponse:
    body = user_row_json(user_id)
    if body is None:
        return HttpResponse(NOT_FOUND, status=404, content_type="application/json")
    return HttpResponse(body, content_type="application/json")


def ping(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [
    path("floor/users/<str:user_id>", user_by_id),
    path("floor/ping", ping),
]
