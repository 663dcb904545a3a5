"""A TCP proxy that tests put between the service and MariaDB or Redis, to cut
the link on demand without touching the shared servers themselves.

One background thread runs the whole proxy (a selector over the listening
socket, every connection and a wake-up pipe), and ``cut``/``restore`` hand it
commands and wait until they are applied: when ``cut()`` returns, every
connection is already closed, so a test can act on that at once.

Cut modes, each a real way a backend goes away:

- ``"refuse"``: the listening socket closes too, so new connections get
  ECONNREFUSED (the backend's host is up, the server is not);
- ``"reset"``: new connections are accepted and reset at once (a restarting
  server, a load balancer with no backend);
- ``"blackhole"``: connections open but nothing ever comes back, existing ones
  included (a partition, a dropped route). Clients notice only by timing out.
"""

from __future__ import annotations

import contextlib
import queue
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from typing import Literal

CutMode = Literal["refuse", "reset", "blackhole"]

_CHUNK = 65536
# Sends block the loop; a peer that stops reading must not freeze the proxy for long.
_SEND_TIMEOUT = 5.0


def _abort(sock: socket.socket) -> None:
    """Close with RST rather than FIN: the peer sees the connection die, as it
    would if the server's process were killed."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target``; usable as a context manager."""

    def __init__(
        self,
        target: tuple[str, int],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        connect_timeout: float = 2.0,
        source: str | None = None,
    ) -> None:
        """``source``: the local address the proxy connects from (any of
        127.0.0.0/8 on loopback), so that the target sees another client."""
        self.target = target
        self.source = source
        self.host = host
        self.connect_timeout = connect_timeout
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._commands: queue.Queue[tuple[Callable[[], None], threading.Event]] = queue.Queue()
        self._peers: dict[socket.socket, socket.socket | None] = {}
        self._clients: set[socket.socket] = set()
        self._mode: CutMode | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.accepted = 0  # connections accepted, over the proxy's life
        self._listener: socket.socket | None = self._listen(port)
        self.port: int = self._listener.getsockname()[1]

    # --- public API (any thread) ------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def is_cut(self) -> bool:
        return self._mode is not None

    def start(self) -> TcpProxy:
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        assert self._listener is not None
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._run, name=f"proxy-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._call(self._stop_now)
        self._thread.join(timeout=5)
        self._thread = None

    def cut(self, mode: CutMode = "refuse") -> None:
        """Close every open connection both ways; new ones fail as ``mode`` says."""
        self._call(lambda: self._cut_now(mode))

    def restore(self) -> None:
        """Forward new connections again (the ones the cut closed stay closed)."""
        self._call(self._restore_now)

    def open_connections(self) -> int:
        """Client connections currently open through the proxy."""
        counted: list[int] = []
        self._call(lambda: counted.append(len(self._clients)))
        return counted[0]

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- the loop thread ----------------------------------------------------------------

    def _call(self, command: Callable[[], None]) -> None:
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError("proxy is not running")
        done = threading.Event()
        self._commands.put((command, done))
        self._wake_write.send(b"x")
        if not done.wait(timeout=10):
            raise RuntimeError("proxy loop did not answer within 10 s")

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Lets restore() take the same port back while cut connections sit in TIME_WAIT.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, port))
        listener.listen(128)
        listener.setblocking(False)
        return listener

    def _run(self) -> None:
        while not self._stopping:
            for key, _ in self._selector.select(timeout=1.0):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._wake_read:
                    self._drain_commands()
                elif sock is self._listener:
                    self._accept()
                elif sock in self._peers:
                    self._forward(sock)
        for sock in list(self._peers):
            _abort(sock)
        self._peers.clear()
        self._clients.clear()
        self._selector.close()

    def _drain_commands(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self._wake_read.recv(4096)
        while True:
            try:
                command, done = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                command()
            finally:
                done.set()

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            client, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        self.accepted += 1
        if self._mode == "reset":
            _abort(client)
            return
        client.settimeout(_SEND_TIMEOUT)
        self._clients.add(client)
        if self._mode == "blackhole":
            self._track(client, None)
            return
        try:
            upstream = socket.create_connection(
                self.target,
                timeout=self.connect_timeout,
                source_address=(self.source, 0) if self.source else None,
            )
        except OSError:
            self._clients.discard(client)
            _abort(client)  # the target itself is down: pass that on
            return
        upstream.settimeout(_SEND_TIMEOUT)
        self._track(client, upstream)
        self._track(upstream, client)

    def _track(self, sock: socket.socket, peer: socket.socket | None) -> None:
        self._peers[sock] = peer
        self._selector.register(sock, selectors.EVENT_READ)

    def _forward(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return
        except OSError:
            data = b""
        peer = self._peers.get(sock)
        if not data:
            self._close_pair(sock)
            return
        if self._mode == "blackhole" or peer is None:
            return  # swallowed: the sender waits for an answer that never comes
        try:
            peer.sendall(data)
        except OSError:
            self._close_pair(sock)

    def _close_pair(self, sock: socket.socket) -> None:
        for one in (sock, self._peers.get(sock)):
            if one is None or one not in self._peers:
                continue
            self._peers.pop(one, None)
            self._clients.discard(one)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(one)
            _abort(one)

    def _close_all(self) -> None:
        for sock in list(self._peers):
            self._close_pair(sock)

    def _cut_now(self, mode: CutMode) -> None:
        self._mode = mode
        if mode == "blackhole":
            return  # connections stay open and silent; _forward drops their data
        self._close_all()
        if mode == "refuse" and self._listener is not None:
            self._selector.unregister(self._listener)
            self._listener.close()
            self._listener = None

    def _restore_now(self) -> None:
        if self._mode == "blackhole":
            # Whatever was sent into the hole is lost; a connection cannot resume
            # mid-conversation, so end them as a healed partition eventually would.
            self._close_all()
        self._mode = None
        if self._listener is None:
            self._listener = self._listen(self.port)
            self._selector.register(self._listener, selectors.EVENT_READ)

    def _stop_now(self) -> None:
        self._stopping = True
        if self._listener is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(self._listener)
            self._listener.close()
            self._listener = None
        self._selector.unregister(self._wake_read)
        self._wake_write.close()
        self._wake_read.close()
