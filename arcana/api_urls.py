"""The public REST API of both apps, in one URL conf.

``arcana.urls`` mounts it (or, in microservices mode, the part the service
owns), and the OpenAPI schema is always generated from all of it: the users
service of a microservices deployment publishes the docs of the whole API,
as served by the gateway, not of its half.
"""

from django.urls import URLPattern, URLResolver, include, path

APPS = {"authn": "authn.api.urls", "users": "users.api.urls"}


def api_routes(apps: tuple[str, ...] = tuple(APPS)) -> list[URLPattern | URLResolver]:
    """The API routes of ``apps``, under ``api/v1/``."""
    return [path("api/v1/", include(APPS[app])) for app in apps]


urlpatterns = api_routes()
