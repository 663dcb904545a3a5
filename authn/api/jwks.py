"""``GET /.well-known/jwks.json``: the public key that verifies access tokens.

With an asymmetric key (``JWT_PRIVATE_KEY`` / ``JWT_PUBLIC_KEY``) another
process, or another team's service, can verify tokens without being able to
mint them: it fetches this JWK Set and picks the key by the token's ``kid``.
With HS256 the key is a shared secret and there is nothing to publish: 404.
"""

from django.http import HttpRequest, JsonResponse
from django.utils.cache import patch_cache_control
from django.views.decorators.csrf import csrf_exempt

from arcana.core.rest import error_json
from authn.tokens import published_jwks

# Verifiers may keep the set this long (PyJWKClient's own default); a token
# signed by a key they do not know yet makes them fetch it again anyway.
JWKS_MAX_AGE = 300


# Nothing here changes state; exempt so that a POST gets the 405, not a CSRF page.
@csrf_exempt
def jwks(request: HttpRequest) -> JsonResponse:
    if request.method not in ("GET", "HEAD"):
        # JSON, like DRF's 405s (Django's own would be an empty text/html body).
        refused = error_json(405, f'Method "{request.method}" not allowed.', "method_not_allowed")
        refused["Allow"] = "GET, HEAD"
        return refused
    document = published_jwks()
    if document is None:
        return error_json(
            404, "No public key: tokens are signed with a shared secret (HS256).", "not_found"
        )
    response = JsonResponse(document)
    patch_cache_control(response, public=True, max_age=JWKS_MAX_AGE)
    return response
