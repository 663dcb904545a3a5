"""The fault-injection proxy itself, against a local echo server."""

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.proxy import TcpProxy


class EchoServer:
    """Echoes every byte back; one thread per connection."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[TcpProxy]:
    with TcpProxy(("127.0.0.1", echo.port)) as running:
        yield running


def connect(proxy: TcpProxy) -> socket.socket:
    return socket.create_connection(proxy.address, timeout=2)


def roundtrip(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def is_dead(sock: socket.socket) -> bool:
    """The connection was closed under us: EOF or reset, never a hang."""
    try:
        sock.sendall(b"ping")
        return sock.recv(16) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def dead_on_arrival(proxy: TcpProxy) -> bool:
    """A new connection is reset: during the handshake or right after it."""
    try:
        sock = connect(proxy)
    except ConnectionResetError:
        return True
    with sock:
        return is_dead(sock)


def test_forwards_both_ways(proxy: TcpProxy) -> None:
    payload = bytes(range(256)) * 1024  # bigger than one chunk
    with connect(proxy) as sock:
        assert roundtrip(sock, payload) == payload
        assert proxy.open_connections() == 1
    deadline = time.monotonic() + 2
    while proxy.open_connections() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy.open_connections() == 0


def test_cut_refuse_closes_open_connections_and_refuses_new_ones(proxy: TcpProxy) -> None:
    with connect(proxy) as sock:
        assert roundtrip(sock, b"hello") == b"hello"
        proxy.cut("refuse")
        assert proxy.is_cut
        assert is_dead(sock)
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        connect(proxy)
    assert time.monotonic() - started < 0.5
    assert proxy.open_connections() == 0


def test_cut_reset_accepts_then_resets_new_connections(proxy: TcpProxy) -> None:
    with connect(proxy) as old:
        proxy.cut("reset")
        assert is_dead(old)
    started = time.monotonic()
    assert dead_on_arrival(proxy)
    assert time.monotonic() - started < 0.5
    assert proxy.accepted == 2


def test_cut_blackhole_keeps_connections_open_but_silent(proxy: TcpProxy) -> None:
    with connect(proxy) as old:
        assert roundtrip(old, b"before") == b"before"
        proxy.cut("blackhole")
        with connect(proxy) as new:
            for sock in (old, new):
                sock.settimeout(0.3)
                sock.sendall(b"anyone there?")
                with pytest.raises(TimeoutError):
                    sock.recv(16)
        proxy.restore()
        # What went into the hole is gone; the connection ends rather than resume.
        old.settimeout(2)
        assert is_dead(old)


@pytest.mark.parametrize("mode", ["refuse", "reset", "blackhole"])
def test_restore_forwards_again_on_the_same_port(proxy: TcpProxy, mode: str) -> None:
    port = proxy.port
    proxy.cut(mode)  # type: ignore[arg-type]
    proxy.restore()
    assert not proxy.is_cut
    assert proxy.port == port
    with connect(proxy) as sock:
        assert roundtrip(sock, b"back") == b"back"


def test_unreachable_target_resets_the_client(echo: EchoServer) -> None:
    echo.close()
    with TcpProxy(("127.0.0.1", echo.port), connect_timeout=0.5) as proxy:
        assert dead_on_arrival(proxy)
        assert proxy.accepted == 1


def test_stop_ends_every_connection(echo: EchoServer) -> None:
    proxy = TcpProxy(("127.0.0.1", echo.port)).start()
    sock = connect(proxy)
    with sock:
        assert roundtrip(sock, b"x") == b"x"
        proxy.stop()
        assert is_dead(sock)
    with pytest.raises(ConnectionRefusedError):
        connect(proxy)
    with pytest.raises(RuntimeError, match="not running"):
        proxy.cut()
