"""docker/gunicorn.conf.py's SIGTERM hook on the states a worker meets."""

import logging
import os
import runpy
import socket
from pathlib import Path
from typing import Any

import pytest
from gunicorn.config import Config
from gunicorn.sock import TCPSocket

GUNICORN_CONF = Path(__file__).resolve().parent.parent / "docker" / "gunicorn.conf.py"


class Worker:
    def __init__(self, listener: TCPSocket, *, threaded: bool) -> None:
        self.sockets = [listener]
        self.accepted = 0
        if threaded:
            self.enqueue_req = lambda *args: None

    def accept(self, listener: Any) -> None:
        listener.accept()[0].close()
        self.accepted += 1


@pytest.fixture
def listener() -> TCPSocket:
    return TCPSocket(("127.0.0.1", 0), Config(), logging.getLogger("test"))


@pytest.mark.parametrize("threaded", [True, False])
def test_a_second_sigterm_after_the_listener_closed_is_a_no_op(
    listener: TCPSocket, threaded: bool
) -> None:
    stop_listening = runpy.run_path(str(GUNICORN_CONF))["_stop_listening"]
    worker = Worker(listener, threaded=threaded)
    listener.close()
    stop_listening(worker)  # raised TypeError / AttributeError: a traceback at every stop
    assert listener.sock is None


def test_the_first_sigterm_takes_the_queue_then_refuses(listener: TCPSocket) -> None:
    stop_listening = runpy.run_path(str(GUNICORN_CONF))["_stop_listening"]
    worker = Worker(listener, threaded=True)
    address = listener.sock.getsockname()
    with socket.create_connection(address, timeout=5):
        stop_listening(worker)
    assert worker.accepted == 1
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=5).close()
    listener.close()


def test_the_control_socket_is_off_unless_a_path_is_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Its default directory ($HOME/.gunicorn) is on the image's read-only root.
    monkeypatch.delenv("GUNICORN_CONTROL_SOCKET", raising=False)
    settings = runpy.run_path(str(GUNICORN_CONF))
    assert settings["control_socket_disable"] is True
    assert "control_socket" not in settings
    path = str(tmp_path / "g.ctl")
    monkeypatch.setenv("GUNICORN_CONTROL_SOCKET", path)
    settings = runpy.run_path(str(GUNICORN_CONF))
    assert (settings["control_socket_disable"], settings["control_socket"]) == (False, path)
    config = Config()
    for name in ("control_socket", "control_socket_disable"):
        config.set(name, settings[name])  # names gunicorn knows


@pytest.mark.parametrize(
    ("port", "message"),
    [
        ("nine", "REST_METRICS_PORT must be a port number (1-65535), got 'nine'"),
        ("70000", "REST_METRICS_PORT must be a port number (1-65535), got '70000'"),
    ],
)
def test_a_bad_rest_metrics_port_stops_the_master_with_one_line(
    monkeypatch: pytest.MonkeyPatch, port: str, message: str
) -> None:
    monkeypatch.setenv("REST_METRICS_PORT", port)
    when_ready = runpy.run_path(str(GUNICORN_CONF))["when_ready"]
    with pytest.raises(SystemExit) as stopped:
        when_ready(None)
    assert str(stopped.value) == message


def test_a_taken_rest_metrics_port_stops_the_master_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("REST_METRICS_PORT", str(taken.getsockname()[1]))
        conf = runpy.run_path(str(GUNICORN_CONF))
        conf["on_starting"](None)
        with pytest.raises(SystemExit) as stopped:
            conf["when_ready"](None)
    assert str(stopped.value).startswith("REST_METRICS_PORT: cannot serve metrics on 127.0.0.1:")


def test_metrics_off_means_no_master_metrics_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REST_METRICS_PORT", "nine")  # not even read
    monkeypatch.setenv("METRICS_ENABLED", "false")
    assert runpy.run_path(str(GUNICORN_CONF))["when_ready"](None) is None


def _unset_multiproc_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    # setenv first: a bare delenv of an absent variable records nothing to
    # undo, and on_starting's own value would then outlive the test.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "unset after the test")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")


def test_reading_the_config_leaves_the_environment_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the master's on_starting sets the directory: a process that merely
    # reads the file (a test, a tool) would hand it to every server it starts.
    _unset_multiproc_dir(monkeypatch)
    runpy.run_path(str(GUNICORN_CONF))
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_on_starting_makes_and_exit_removes_its_own_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _unset_multiproc_dir(monkeypatch)
    conf = runpy.run_path(str(GUNICORN_CONF))
    conf["on_starting"](None)
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert directory.is_dir()
    conf["on_exit"](None)
    assert not directory.exists()
