"""``client_address``: the client's address as DRF's ``get_ident`` finds it for
REST, with ``GRPC_NUM_PROXIES`` trusted proxies instead of ``NUM_PROXIES``."""

from typing import Any

import pytest
from rest_framework.test import APIRequestFactory
from rest_framework.throttling import BaseThrottle

from arcana.core.grpc import client_address


class FakeContext:
    """The two things ``client_address`` reads of a ``grpc.ServicerContext``."""

    def __init__(self, peer: str, metadata: tuple[tuple[str, str | bytes], ...] = ()) -> None:
        self._peer = peer
        self._metadata = metadata

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str | bytes], ...]:
        return self._metadata


def address(settings: Any, num_proxies: int, peer: str, *forwarded_for: str) -> str:
    settings.GRPC_NUM_PROXIES = num_proxies
    metadata = tuple(("x-forwarded-for", value) for value in forwarded_for)
    context: Any = FakeContext(peer, (("user-agent", "test"), *metadata))
    return client_address(context)


CASES = [
    # (GRPC_NUM_PROXIES, x-forwarded-for or None, expected)
    (0, None, "192.0.2.10"),
    (0, "203.0.113.5", "192.0.2.10"),  # exposed directly: the metadata is the client's to forge
    (1, None, "192.0.2.10"),
    (1, "203.0.113.5", "203.0.113.5"),
    (1, "10.0.0.1, 203.0.113.5", "203.0.113.5"),  # the left part is the client's to forge
    (2, "10.0.0.1, 203.0.113.5, 198.51.100.7", "203.0.113.5"),
    (3, "203.0.113.5, 198.51.100.7", "203.0.113.5"),  # fewer entries than proxies: leftmost
]


@pytest.mark.parametrize(("num_proxies", "forwarded_for", "expected"), CASES)
def test_client_address(
    settings: Any, num_proxies: int, forwarded_for: str | None, expected: str
) -> None:
    values = () if forwarded_for is None else (forwarded_for,)
    assert address(settings, num_proxies, "ipv4:192.0.2.10:40000", *values) == expected


@pytest.mark.parametrize(("num_proxies", "forwarded_for", "expected"), CASES)
def test_client_address_agrees_with_drf_get_ident(
    settings: Any, num_proxies: int, forwarded_for: str | None, expected: str
) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": num_proxies}
    request = APIRequestFactory().get("/", REMOTE_ADDR="192.0.2.10")
    if forwarded_for is not None:
        request.META["HTTP_X_FORWARDED_FOR"] = forwarded_for
    assert BaseThrottle().get_ident(request) == expected


def test_rest_num_proxies_plays_no_part(settings: Any) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    assert address(settings, 0, "ipv4:192.0.2.10:40000", "203.0.113.5") == "192.0.2.10"


def test_repeated_metadata_is_joined_as_http_joins_headers(settings: Any) -> None:
    peer = "ipv4:192.0.2.10:40000"
    assert address(settings, 1, peer, "10.0.0.1", "203.0.113.5") == "203.0.113.5"
    assert address(settings, 2, peer, "10.0.0.1", "203.0.113.5") == "10.0.0.1"


def test_ipv6_peer(settings: Any) -> None:
    assert address(settings, 0, "ipv6:[2001:db8::1]:40000") == "2001:db8::1"
