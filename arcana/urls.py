"""URL routing, by what the process is (``settings.ARCANA_DEPLOYMENT``).

- monolithic: everything below;
- layered, controller tier (the public edge): the API, its docs, the JWKS
  and the probes; no admin, which needs the database;
- layered, repository tier (its HTTP port, for operators): the Django admin
  and the probes; the API is served at the edge only;
- layered, service tier: the probes only (it serves internal gRPC);
- microservices, users service: the users API, the docs (of the whole API,
  as the gateway serves it), the admin and the probes;
- microservices, auth service: the auth API, the JWKS and the probes.
"""

from django.conf import settings
from django.contrib import admin
from django.urls import URLPattern, URLResolver, path

from arcana import docs, health
from arcana.api_urls import APPS, api_routes
from arcana.observe.views import metrics_view
from authn.api.jwks import jwks

Route = URLPattern | URLResolver

_deployment = settings.ARCANA_DEPLOYMENT
_tier = _deployment.tier
_at_edge = _tier is None or str(_tier) == "controller"
_apps = tuple(app for app in APPS if _deployment.owns(app))

_docs: list[Route] = [
    path("api/schema", docs.SchemaView.as_view(), name="schema"),
    path("api/docs", docs.SwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]
_jwks: list[Route] = [path(".well-known/jwks.json", jwks, name="jwks")]
_probes: list[Route] = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # Every HTTP process's Prometheus metrics; the gateway does not pass it on.
    path("metrics", metrics_view, name="metrics"),
]
_admin: list[Route] = [path("admin/", admin.site.urls)]

urlpatterns: list[Route] = [
    *(api_routes(_apps) if _at_edge else []),
    *(_docs if _at_edge and _deployment.owns("users") else []),
    *(_jwks if _at_edge and _deployment.owns("authn") else []),
    *_probes,
    *(_admin if _deployment.holds_database and _deployment.owns("users") else []),
]

handler400 = "arcana.errors.handler400"
handler403 = "arcana.errors.handler403"
handler404 = "arcana.errors.handler404"
handler500 = "arcana.errors.handler500"
