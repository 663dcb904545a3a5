"""Bad Host headers: a 400 JSON each, one log line per host per minute, no traceback."""

import logging
import uuid

import pytest
from django.test import Client

from arcana.logfilters import DisallowedHostFilter

LOGGER = "django.security.DisallowedHost"


def bad_host() -> str:
    return f"{uuid.uuid4().hex[:12]}.evil.example"  # fresh: the filter outlives tests


def request_with_host(host: str) -> None:
    response = Client().get("/healthz", HTTP_HOST=host)
    assert response.status_code == 400
    assert response.json() == {"error": "Bad request.", "code": "bad_request"}


def test_a_bad_host_is_logged_once_a_minute_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host, other = bad_host(), bad_host()
    for _ in range(5):
        request_with_host(host)
    mine = [record for record in caplog.records if record.name == LOGGER]
    assert len(mine) == 1
    assert host in mine[0].getMessage()
    assert mine[0].exc_info is None
    assert "Traceback" not in caplog.text
    request_with_host(other)
    mine = [record for record in caplog.records if record.name == LOGGER]
    assert len(mine) == 2
    assert other in mine[1].getMessage()


def test_an_invalid_host_name_is_limited_the_same_way(caplog: pytest.LogCaptureFixture) -> None:
    host = f"bad_{uuid.uuid4().hex[:8]}..example"  # not even a valid domain name
    for _ in range(3):
        request_with_host(host)
    assert len([record for record in caplog.records if record.name == LOGGER]) == 1


def _record(message: str) -> logging.LogRecord:
    try:
        raise ValueError(message)
    except ValueError as exc:
        return logging.LogRecord(
            LOGGER, logging.ERROR, __file__, 1, message, (), (type(exc), exc, None)
        )


def test_filter_lets_a_host_through_again_after_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr("arcana.logfilters.time.monotonic", lambda: now[0])
    log_filter = DisallowedHostFilter(window=60)
    first = _record("Invalid HTTP_HOST header: 'a.example'.")
    assert log_filter.filter(first)
    assert first.exc_info is None
    now[0] += 59
    assert not log_filter.filter(_record("Invalid HTTP_HOST header: 'a.example'."))
    now[0] += 2
    assert log_filter.filter(_record("Invalid HTTP_HOST header: 'a.example'."))


def test_filter_memory_is_bounded() -> None:
    log_filter = DisallowedHostFilter(window=60, max_hosts=3)
    for index in range(10):
        assert log_filter.filter(_record(f"Invalid HTTP_HOST header: 'h{index}.example'."))
    assert len(log_filter._logged_at) == 3
    # The oldest were forgotten; the latest are still held back.
    assert log_filter.filter(_record("Invalid HTTP_HOST header: 'h0.example'."))
    assert not log_filter.filter(_record("Invalid HTTP_HOST header: 'h9.example'."))
