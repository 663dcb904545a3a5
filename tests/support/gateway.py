"""The microservices gateway as tests run it: ``scripts/gateway.sh`` itself
(render, ``nginx -t``, nginx in the foreground), in front of upstreams the
test names, on ports of the test's range (``ARCANA_TEST_PORTS``)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import ROOT, Server, free_port, http_ok

SCRIPT = ROOT / "scripts" / "gateway.sh"


@dataclass(frozen=True)
class Upstreams:
    """host:port of each service's REST and gRPC servers."""

    users_rest: str
    auth_rest: str
    users_grpc: str
    auth_grpc: str

    def env(self) -> dict[str, str]:
        return {
            "USERS_REST_UPSTREAM": self.users_rest,
            "AUTH_REST_UPSTREAM": self.auth_rest,
            "USERS_GRPC_UPSTREAM": self.users_grpc,
            "AUTH_GRPC_UPSTREAM": self.auth_grpc,
        }


@dataclass(frozen=True)
class Gateway:
    server: Server
    rest_port: int
    grpc_port: int
    run_dir: Path

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def access_log(self) -> str:
        return self.server.log_text()


def nginx_binary() -> str:
    """Debian's nginx (scripts/bootstrap.sh --dev installs it); missing is a failure."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )
    if found is None:
        raise AssertionError("nginx is missing: scripts/bootstrap.sh --dev installs it")
    return found


def gateway_env(
    upstreams: Upstreams, rest_port: int, grpc_port: int, run_dir: Path
) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.endswith("_UPSTREAM")}
    env.update(
        upstreams.env(),
        HOST="127.0.0.1",
        REST_PORT=str(rest_port),
        GRPC_PORT=str(grpc_port),
        GATEWAY_DIR=str(run_dir),
        GATEWAY_WORKERS="2",
    )
    env.pop("FORWARDED_PROTO", None)
    return env


def run_script(
    env: Mapping[str, str], *args: str, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """``scripts/gateway.sh`` to its end (for a configuration it refuses). If
    it serves instead, its whole process group goes at the timeout: nginx's
    workers outlive a killed master."""
    with subprocess.Popen(
        [str(SCRIPT), *args],
        env=dict(env),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@contextmanager
def running_gateway(
    upstreams: Upstreams, directory: Path, *, name: str = "gateway"
) -> Iterator[Gateway]:
    """``scripts/gateway.sh`` serving until the block ends (then SIGTERM)."""
    nginx_binary()
    rest_port, grpc_port = free_port(), free_port()
    run_dir = directory / f"{name}-nginx"
    server = Server(
        f"gateway (nginx) {name}",
        [str(SCRIPT)],
        gateway_env(upstreams, rest_port, grpc_port, run_dir),
        directory / f"{name}.log",
        append_log=True,
    )
    try:
        server.start()
        server.wait_until(http_ok(rest_port, "/healthz"), timeout=30)
        server.wait_until(lambda: _listening(grpc_port), timeout=30)
        yield Gateway(server, rest_port, grpc_port, run_dir)
    finally:
        server.stop(grace=5)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


class Trickle:
    """``count`` clients that each send the start of a request's headers, then
    one more header line every ``interval`` seconds, never finishing (a
    slowloris); :meth:`close` ends them."""

    def __init__(self, port: int, count: int, interval: float = 0.5) -> None:
        self.sockets: list[socket.socket] = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET /api/v1/users HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            self.sockets.append(sock)
        self.interval = interval
        self._stop = threading.Event()
        self.sent = 0
        self._thread = threading.Thread(target=self._run, name="trickle", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for sock in self.sockets:
                try:
                    sock.sendall(b"X-Slow: 1\r\n")
                    self.sent += 1
                except OSError:
                    pass  # the server closed it: that is its right

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()

    def __enter__(self) -> Trickle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
