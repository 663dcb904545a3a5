"""URL routing, by what the process is (``settings.ARCANA_DEPLOYMENT``).

- monolithic: everything below;
- layered, controller tier (the public edge): the API, its docs, the JWKS
  and the probes; no admin, which needs the database;
- layered, repository tier (its HTTP port, for operators): the Django admin
  and the probes; the API is served at the edge only;
- layered, service tier: the probes only (it serves internal gRPC).
"""

from django.conf import settings
from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

from arcana import docs, health
from authn.api.jwks import jwks

Route = URLPattern | URLResolver

_tier = settings.ARCANA_DEPLOYMENT.tier
_api: list[Route] = [
    path("api/v1/", include("authn.api.urls")),
    path("api/v1/", include("users.api.urls")),
    path("api/schema", docs.SchemaView.as_view(), name="schema"),
    path("api/docs", docs.SwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path(".well-known/jwks.json", jwks, name="jwks"),
]
_probes: list[Route] = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]
_admin: list[Route] = [path("admin/", admin.site.urls)]

urlpatterns: list[Route] = [
    *(_api if _tier is None or str(_tier) == "controller" else []),
    *_probes,
    *(_admin if settings.ARCANA_DEPLOYMENT.holds_database else []),
]

handler400 = "arcana.errors.handler400"
handler403 = "arcana.errors.handler403"
handler404 = "arcana.errors.handler404"
handler500 = "arcana.errors.handler500"
