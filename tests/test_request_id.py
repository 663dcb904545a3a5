"""Every REST response names its request: the client's ``X-Request-ID`` when
usable, else a fresh one (arcana.middleware.RequestIdMiddleware)."""

import re

import pytest
from django.test import Client

from arcana.core.context import accept_request_id, acting_user, call_context, request_id

FRESH = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize(
    "sent", ["edge-req-42", "0af7651916cd43dd8448eb211c80319c", "a.b:c_d-E", "x" * 64]
)
def test_a_usable_id_is_echoed(sent: str) -> None:
    response = Client().get("/healthz", HTTP_X_REQUEST_ID=sent)
    assert response["X-Request-ID"] == sent


@pytest.mark.parametrize(
    "sent",
    ["x" * 65, "has space", "semi;colon", 'quote"d', "slash/ed", "caf\u00e9", ""],
    ids=["too-long", "space", "semicolon", "quote", "slash", "non-ascii", "empty"],
)
def test_an_unusable_id_is_replaced_with_a_fresh_one(sent: str) -> None:
    response = Client().get("/healthz", HTTP_X_REQUEST_ID=sent)
    assert FRESH.fullmatch(response["X-Request-ID"]), response["X-Request-ID"]


def test_a_request_without_one_gets_a_fresh_one_each_time() -> None:
    first, second = (Client().get("/healthz")["X-Request-ID"] for _ in range(2))
    assert FRESH.fullmatch(first)
    assert FRESH.fullmatch(second)
    assert first != second


@pytest.mark.django_db
def test_errors_carry_the_id_too() -> None:
    client = Client()
    missing = client.get("/api/v1/nope", HTTP_X_REQUEST_ID="lost-1")
    assert (missing.status_code, missing["X-Request-ID"]) == (404, "lost-1")
    refused = client.get("/api/v1/users", HTTP_X_REQUEST_ID="anon-1")
    assert (refused.status_code, refused["X-Request-ID"]) == (401, "anon-1")
    invalid = client.post("/api/v1/auth/login", "{", content_type="application/json")
    assert invalid.status_code == 400
    assert FRESH.fullmatch(invalid["X-Request-ID"])


def test_the_id_lasts_only_as_long_as_its_call() -> None:
    assert accept_request_id(None) != accept_request_id(None)
    with call_context(request="outer", actor="u1"):
        with call_context(request="inner"):
            assert (request_id.get(), acting_user.get()) == ("inner", None)
        assert (request_id.get(), acting_user.get()) == ("outer", "u1")
    assert (request_id.get(), acting_user.get()) == (None, None)
