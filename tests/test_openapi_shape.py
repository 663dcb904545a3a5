"""The OpenAPI schema reads well in generated clients (openapi-python-client,
openapi-typescript), and stays that way: names without the version, one
component per serializer, public operations without security, one enum type
per enum, a summary and no docstring leaking into every operation, UUID ids."""

from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

PUBLIC = {
    "auth_register_create",
    "auth_login_create",
    "auth_refresh_create",
    "auth_password_reset_create",
    "auth_password_reset_confirm_create",
    "auth_verify_email_create",
    "auth_verify_email_resend_create",
}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    generated: dict[str, Any] = SchemaGenerator(urlconf="arcana.api_urls").get_schema(
        request=None, public=True
    )
    return generated


def operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        operation
        for path in schema["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "operationId" in operation
    ]


def test_names_carry_no_version_prefix(schema: dict[str, Any]) -> None:
    ids = {operation["operationId"] for operation in operations(schema)}
    assert ids >= PUBLIC
    assert not {operation_id for operation_id in ids if operation_id.startswith("v1")}
    tags = {tag for operation in operations(schema) for tag in operation["tags"]}
    assert tags == {"auth", "users"}


def test_one_component_per_serializer(schema: dict[str, Any]) -> None:
    names = set(schema["components"]["schemas"])
    assert "LoginInput" in names
    assert not {name for name in names if name.endswith("InputRequest")}


def test_public_operations_need_no_credentials_and_the_rest_do(schema: dict[str, Any]) -> None:
    for operation in operations(schema):
        secured = bool(operation.get("security"))
        assert secured is (operation["operationId"] not in PUBLIC), operation["operationId"]


def test_every_operation_has_a_summary_and_no_code_docstring(schema: dict[str, Any]) -> None:
    for operation in operations(schema):
        assert operation.get("summary"), operation["operationId"]
        assert "throttle_scope" not in operation.get("description", "")
        assert "``" not in operation.get("description", "")


def test_enums_are_components_without_choice_lists(schema: dict[str, Any]) -> None:
    for path in schema["paths"].values():
        for operation in path.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                assert "enum" not in parameter["schema"], parameter["name"]
    sync_status = schema["components"]["schemas"]["SyncStatusEnum"]
    assert "* `" not in sync_status.get("description", "")


def test_user_ids_are_uuids(schema: dict[str, Any]) -> None:
    ids = [
        parameter["schema"]
        for path in schema["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict)
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "id" and parameter["in"] == "path"
    ]
    assert ids
    assert all(schema == {"type": "string", "format": "uuid"} for schema in ids)


def test_every_request_body_is_required(schema: dict[str, Any]) -> None:
    bodies = [
        (operation["operationId"], operation["requestBody"])
        for operation in operations(schema)
        if "requestBody" in operation
    ]
    assert {"users_update", "users_partial_update"} <= {name for name, _ in bodies}
    assert all(body.get("required") is True for _, body in bodies)
