"""The OpenAPI schema and the Swagger UI, as open as ``settings.API_DOCS`` says.

- ``public``: anyone (the default in local and test settings);
- ``admin``: an API admin (a bearer token with the ``admin`` role) or a staff
  member signed in to the Django admin (whose session the Swagger UI page
  reuses to fetch the schema); anyone else gets 401 / 403 JSON. The default
  in production;
- ``off``: 404 JSON, as for any unknown route.

The mode is read per request, so the URLs stay the same in every mode.
"""

from typing import Any

from django.conf import settings
from django.http import Http404
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from arcana.core.principal import Principal


class DocsAccess(BasePermission):
    """``public``: anyone; ``admin``: an API admin or a staff admin-site session."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if settings.API_DOCS == "public":
            return True
        user: Any = request.user
        if isinstance(user, Principal):
            return user.actor.is_admin
        return bool(getattr(user, "is_active", False) and getattr(user, "is_staff", False))


class _DocsView(APIView):
    # The API's own authentication (classes by now; the stubs say dotted
    # paths), then the admin site's session.
    authentication_classes = [
        *api_settings.DEFAULT_AUTHENTICATION_CLASSES,  # type: ignore[list-item]
        SessionAuthentication,
    ]
    permission_classes = [DocsAccess]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if settings.API_DOCS == "off":
            raise Http404  # before authentication: no hint that anything is here
        super().initial(request, *args, **kwargs)

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        # Errors are JSON, like every other error, not the page's HTML or YAML.
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return response


class SchemaView(_DocsView, SpectacularAPIView):
    # The whole public API, whichever part of it this process serves.
    urlconf = "arcana.api_urls"


class SwaggerView(_DocsView, SpectacularSwaggerView):
    pass
