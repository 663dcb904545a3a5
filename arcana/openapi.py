"""OpenAPI: document the error responses the API really returns.

drf-spectacular documents only the success response of each operation. Clients
(and schema-driven fuzzers) also need the errors, so :class:`ArcanaAutoSchema`
adds them in one place, deciding per operation which statuses can occur:

- every operation: 406 (an ``Accept`` header that rules out JSON) and 503
  (database unreachable);
- authentication required: 401;
- a request body: 400, 413, 415; query parameters: 400;
- a path parameter (a user id): 404;
- a ``throttle_scope``: 429 (with ``Retry-After``);
- whatever else the view declares in ``error_statuses`` (403 for admin-only
  operations, 409 where an email can clash, 401 for login and refresh), because
  only the service layer knows those rules and it cannot be introspected.

Bodies follow the contract: validation errors are
``{"errors": {"field": ["message", ...]}}``; everything else, including a 400 for
malformed JSON, is ``{"error": "message", "code": "machine_code"}``.
"""

from collections.abc import Collection, Mapping
from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent

ERROR_COMPONENT = "Error"
VALIDATION_ERROR_COMPONENT = "ValidationError"

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "Human-readable message."},
        "code": {"type": "string", "description": "Stable machine-readable code."},
    },
    "required": ["error", "code"],
    "additionalProperties": False,
}

VALIDATION_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "errors": {
            "type": "object",
            "description": "Messages per field; `non_field_errors` for the input as a whole.",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    "required": ["errors"],
    "additionalProperties": False,
}

DESCRIPTIONS: Mapping[int, str] = {
    400: "Invalid input (field errors), or a malformed body (error and code).",
    401: "Missing, malformed, forged, expired or revoked token, or bad credentials.",
    403: "Authenticated, but without the role this needs.",
    404: "No such user, or one the caller may not see.",
    406: "The Accept header rules out JSON, the only type this API produces.",
    409: "The email address is taken.",
    413: "The request body is too large.",
    415: "The request body is not JSON.",
    429: "Too many requests; retry after `Retry-After` seconds.",
    503: "The database is unreachable; try again shortly.",
}

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

# A view sets this to {action or lower-case method: statuses} for the errors
# that come from service rules (see the module docstring).
ERROR_STATUSES_ATTRIBUTE = "error_statuses"


class ArcanaAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus the contract's error responses; an
    operation's text is its ``summary`` (and ``description``) as declared with
    ``extend_schema``, never the view's docstring, which is written for the
    code's readers; operations open to anyone declare no security, so
    generated clients call them unauthenticated."""

    def get_description(self) -> str:  # type: ignore[override]  # drf-spectacular's signature
        return ""

    def get_auth(self) -> list[dict[str, Any]]:
        if not getattr(self.view, "authentication_classes", True):
            return []
        auth: list[dict[str, Any]] = super().get_auth()
        return auth

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        for status in sorted(self.error_statuses()):
            responses.setdefault(str(status), self._error_response(status))
        return responses

    def error_statuses(self) -> set[int]:
        """Every error status this operation can answer with."""
        statuses = {406, 503}
        if self._requires_authentication():
            statuses.add(401)
        if self.method in BODY_METHODS and self._get_request_body():  # type: ignore[no-untyped-call]
            statuses |= {400, 413, 415}
        parameters = self._get_parameters()
        if any(parameter["in"] == "query" for parameter in parameters):
            statuses.add(400)
        if any(parameter["in"] == "path" for parameter in parameters):
            statuses.add(404)
        if getattr(self.view, "throttle_scope", None):
            statuses.add(429)
        statuses.update(self._declared_statuses())
        return statuses

    def _requires_authentication(self) -> bool:
        # [{}] (or nothing at all) means "no credentials needed".
        requirements = self.get_auth()
        return bool(requirements) and {} not in requirements

    def _declared_statuses(self) -> Collection[int]:
        declared: Mapping[str, Collection[int]] = getattr(self.view, ERROR_STATUSES_ATTRIBUTE, {})
        key = getattr(self.view, "action", None) or self.method.lower()
        return declared.get(key, ())

    def _error_response(self, status: int) -> dict[str, Any]:
        error = self._component(ERROR_COMPONENT, ERROR_SCHEMA)
        schema: dict[str, Any]
        if status == 400:
            schema = {
                "oneOf": [
                    self._component(VALIDATION_ERROR_COMPONENT, VALIDATION_ERROR_SCHEMA),
                    error,
                ]
            }
        else:
            schema = error
        response: dict[str, Any] = {
            "description": DESCRIPTIONS.get(status, ""),
            "content": {"application/json": {"schema": schema}},
        }
        if status == 429:
            response["headers"] = {
                "Retry-After": {
                    "schema": {"type": "integer", "minimum": 1},
                    "description": "Seconds to wait before retrying.",
                }
            }
        return response

    def _component(self, name: str, schema: dict[str, Any]) -> dict[str, str]:
        component = ResolvedComponent(  # type: ignore[no-untyped-call]
            name=name, type=ResolvedComponent.SCHEMA, schema=schema, object=name
        )
        self.registry.register_on_missing(component)
        ref: dict[str, str] = component.ref
        return ref


def reference_parameter_enums(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """A query parameter whose values are an enum component's (``sync_status``)
    refers to that component, so generated clients have one enum type for it,
    not a second one named after the operation. A drf-spectacular
    postprocessing hook (``SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]``),
    run after its own enum hook."""
    schemas = result.get("components", {}).get("schemas", {})
    by_values = {
        tuple(schema["enum"]): name
        for name, schema in schemas.items()
        if isinstance(schema.get("enum"), list)
    }
    for path in result.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else ():
                values = parameter.get("schema", {}).get("enum")
                name = by_values.get(tuple(values)) if isinstance(values, list) else None
                if name is not None:
                    parameter["schema"] = {"$ref": f"#/components/schemas/{name}"}
    return result


def require_request_bodies(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """Every body the API takes is a JSON object, sent even when every field in
    it is optional (PUT and PATCH take any subset, ``{}`` included): say so,
    so generated clients take a body argument rather than an optional one. A
    drf-spectacular postprocessing hook."""
    for path in result.get("paths", {}).values():
        for operation in path.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                operation["requestBody"]["required"] = True
    return result
