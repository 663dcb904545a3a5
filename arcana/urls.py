from django.contrib import admin
from django.urls import include, path

from arcana import docs, health
from authn.api.jwks import jwks

urlpatterns = [
    path("api/v1/", include("authn.api.urls")),
    path("api/v1/", include("users.api.urls")),
    path("api/schema", docs.SchemaView.as_view(), name="schema"),
    path("api/docs", docs.SwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path(".well-known/jwks.json", jwks, name="jwks"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
]

handler400 = "arcana.errors.handler400"
handler403 = "arcana.errors.handler403"
handler404 = "arcana.errors.handler404"
handler500 = "arcana.errors.handler500"
