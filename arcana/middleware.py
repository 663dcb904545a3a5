"""Request guards that must hold for every view, DRF or not."""

from collections.abc import Awaitable, Callable

from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware as _AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware as _MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware as _SessionMiddleware
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import NoReverseMatch, reverse
from django.utils.deprecation import MiddlewareMixin

from arcana.api_urls import API_PREFIX
from arcana.core.context import accept_request_id, call_context
from arcana.core.exceptions import DATABASE_DOWN_ERRORS, database_error_as_domain
from arcana.core.rest import error_json

GetResponse = Callable[[HttpRequest], HttpResponse]


REQUEST_ID_HEADER = "X-Request-ID"


class RequestIdMiddleware:
    """Every request has an id: the client's (or gateway's) ``X-Request-ID``
    when it is usable, else a new one. It is set for the call
    (``arcana.core.context``), forwarded on every internal hop, and sent back
    in the response's ``X-Request-ID``."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rid = accept_request_id(request.headers.get(REQUEST_ID_HEADER))
        with call_context(request=rid):
            response = self.get_response(request)
        response[REQUEST_ID_HEADER] = rid
        return response


class BodySizeLimitMiddleware:
    """Answer 413 to bodies over ``REQUEST_BODY_MAX_BYTES`` before any parsing.

    DRF's parsers read the stream directly and so bypass Django's own
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` check; this closes that gap.
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raw = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw)
        except ValueError:
            return error_json(400, "Invalid Content-Length header.", "bad_request")
        if length < 0:
            return error_json(400, "Invalid Content-Length header.", "bad_request")
        limit = settings.REQUEST_BODY_MAX_BYTES
        if length > limit:
            return error_json(
                413, f"Request body too large (limit {limit} bytes).", "request_too_large"
            )
        return self.get_response(request)


class DatabaseUnavailableMiddleware:
    """A database outage outside DRF views (admin, probes) is a 503 JSON, not a 500."""

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DATABASE_DOWN_ERRORS):
            error = database_error_as_domain(exception)
            return error_json(503, error.message, error.code)
        return None


class JsonNotFoundMiddleware:
    """Every 404 outside the admin is the contract's JSON, with DEBUG on too.

    ``handler404`` answers unknown URLs with JSON, but only with DEBUG off: with
    it on (local settings) Django sends its technical 404 page, HTML listing
    every URL pattern, to /api/v1/users/, /api/v1/auth/login/ or /nope. The
    admin keeps its own behaviour (its pages and its redirects).
    """

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self._admin_prefix: str | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code == 404
            and not response.get("Content-Type", "").startswith("application/json")
            and not request.path.startswith(self.admin_prefix)
        ):
            return error_json(404, "Not found.", "not_found")
        return response

    @property
    def admin_prefix(self) -> str:
        if self._admin_prefix is None:
            try:
                self._admin_prefix = reverse("admin:index")
            except NoReverseMatch:  # a tier that serves no admin (layered mode's edge)
                self._admin_prefix = "\0"  # matches no path
        return self._admin_prefix


# --- what only browsers' pages need ---------------------------------------------------

_API_PATH = f"/{API_PREFIX}"


def is_api_request(request: HttpRequest) -> bool:
    """A request for the token-authenticated API (``/api/v1/...``)."""
    return request.path_info.startswith(_API_PATH)


class BrowserOnly(MiddlewareMixin):
    """Django's session, session-user and messages middleware serve the pages
    a browser signs in to (the admin; the API docs, which let a staff session
    in). The API under ``/api/v1/`` authenticates every request by its bearer
    token (DRF's ``JWTAuthentication``), sets no cookie and never reads a
    session or leaves a message, so its requests pass these by: a session
    store, a lazy user and a messages store (cookie and session backends)
    fewer per call. Each is a subclass of Django's own, so Django's checks
    (the admin's E408-E410) still see them in ``MIDDLEWARE``. CSRF is left to
    Django's own middleware on every path: DRF's views are exempt from it
    anyway, and ``check --deploy`` looks for it by name."""

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        # Under ASGI both are awaitables, awaited by the caller as Django's own are.
        if is_api_request(request):
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(BrowserOnly, _SessionMiddleware):
    pass


class AuthenticationMiddleware(BrowserOnly, _AuthenticationMiddleware):
    pass


class MessageMiddleware(BrowserOnly, _MessageMiddleware):
    pass
