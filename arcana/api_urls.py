"""The public REST API of both apps, in one URL conf.

``arcana.urls`` mounts it (or, in microservices mode, the part the service
owns), and the OpenAPI schema is always generated from all of it: the users
service of a microservices deployment publishes the docs of the whole API,
as served by the gateway, not of its half.
"""

from django.urls import URLPattern, URLResolver, include, path

APPS = {"authn": "authn.api.urls", "users": "users.api.urls"}
# Where the API lives; requests under it skip the browser-only middleware
# (``arcana.middleware.BrowserOnly``).
API_PREFIX = "api/v1/"


def api_routes(apps: tuple[str, ...] = tuple(APPS)) -> list[URLPattern | URLResolver]:
    """The API routes of ``apps``, under :data:`API_PREFIX`."""
    return [path(API_PREFIX, include(APPS[app])) for app in apps]


urlpatterns = api_routes()
