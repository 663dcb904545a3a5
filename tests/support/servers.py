"""Starting, watching and always stopping the server processes that live
tests and benchmarks run: :class:`Server` (a process group with its log),
:func:`free_port` (from ``ARCANA_TEST_PORTS`` when set) and the readiness
probes (:func:`http_ok`, :func:`grpc_serving`, :func:`log_count`)."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import http.client
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mirakuru import SimpleExecutor
from mirakuru.base import ENV_UUID, cleanup_subprocesses

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
_PR_SET_PDEATHSIG = 1


# ARCANA_TEST_PORTS=LOW-HIGH: servers started by tests and benchmarks take
# their ports from that range (machines where several runs share the loopback
# give each run its own), not wherever the kernel puts them.
PORTS_VARIABLE = "ARCANA_TEST_PORTS"


def _port_range() -> list[int] | None:
    spec = os.environ.get(PORTS_VARIABLE, "").strip()
    if not spec:
        return None
    low, _, high = spec.partition("-")
    try:
        ports = list(range(int(low), int(high or low) + 1))
    except ValueError:
        raise RuntimeError(f"{PORTS_VARIABLE} must read LOW-HIGH, got {spec!r}") from None
    if not ports or ports[0] < 1 or ports[-1] > 65535:
        raise RuntimeError(f"{PORTS_VARIABLE} must be a range of ports, got {spec!r}")
    return ports


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


_handed_out: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (from ``ARCANA_TEST_PORTS`` if set)."""
    ports = _port_range()
    if ports is None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            return port
    # Random order, and one this process has not handed out yet if there is
    # one: a server may not have bound the last one yet.
    shuffled = random.sample(ports, len(ports))
    for candidate in sorted(shuffled, key=lambda port: port in _handed_out):
        if _bindable(candidate):
            _handed_out.add(candidate)
            return candidate
    raise RuntimeError(f"no free port left in {PORTS_VARIABLE}={os.environ[PORTS_VARIABLE]}")


def _die_with_parent() -> None:
    """Runs in the child before exec: if the benchmark is killed outright
    (SIGKILL, no finally), the kernel still sends the server SIGTERM."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


SETPRIV = shutil.which("setpriv")  # util-linux, on every Debian

# mirakuru's exit hook SIGKILLs every process whose marker merely contains this
# process's pid as a substring: a server of another run (a digit run of its
# starter's pid or of its uuid) would match. A server that outlives its starter
# gets SIGTERM from the kernel instead (the parent-death signal above), so the
# hook is off; tests/test_support.py checks it stays off.
atexit.unregister(cleanup_subprocesses)


class _Executor(SimpleExecutor):
    """mirakuru's executor, started the way these servers must be. Two of its
    defaults are overridden (mirakuru is pinned exactly in requirements-dev.txt;
    tests/test_support.py fails if either override stops taking effect):

    - the server gets exactly the environment it is given: mirakuru lays it
      over ``os.environ``, which would hand a tier that must not hold the
      database the test's own ``DATABASE_URL``. mirakuru's marker variable is
      kept: it finds the server's descendants at ``kill()``;
    - its new session comes from Popen's ``start_new_session``, not mirakuru's
      ``preexec_fn=os.setsid``: no Python code may run in the forked child. A
      test process that has grpc's threads running can crash there (a
      segfault in threading's after-fork hook, seen in CI); setpriv sets the
      parent-death signal and execs the server instead.
    """

    @property
    def envvars(self) -> dict[str, str]:
        return {**self._envvars, ENV_UUID: self._uuid}

    @property
    def _popen_kwargs(self) -> dict[str, Any]:
        kwargs = dict(super()._popen_kwargs)
        kwargs.pop("universal_newlines")  # the log is bytes, written by the server itself
        kwargs["preexec_fn"] = None if SETPRIV else _die_with_parent
        kwargs["start_new_session"] = True  # its own process group: stopped as one, spared Ctrl-C
        return kwargs


@dataclass
class Server:
    """One server (a process group: master/supervisor plus its workers), run by
    a mirakuru executor; its output goes to ``log_path``."""

    name: str
    argv: list[str]
    env: Mapping[str, str]
    log_path: Path
    address: str = ""  # host:port it listens on, where its starter records it
    process: subprocess.Popen[bytes] | None = None
    # For a server that opens /dev/stdout again itself (nginx's access log):
    # a second open file description of the log, so every writer must append,
    # or each overwrites the other's lines.
    append_log: bool = False
    _log: IO[bytes] | None = field(default=None, repr=False)
    _executor: _Executor | None = field(default=None, repr=False)

    def start(self) -> None:
        """Start the server and return at once: a stack boots its servers side
        by side, then waits for each (:meth:`wait_until`)."""
        self._log = self.log_path.open("ab" if self.append_log else "wb")
        argv = [SETPRIV, "--pdeathsig", "TERM", "--", *self.argv] if SETPRIV else self.argv
        self._executor = _Executor(
            argv,
            cwd=str(ROOT),
            envvars=dict(self.env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._executor.start()
        self.process = self._executor.process

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            tail = "\n".join(self.log_text().splitlines()[-30:])
            raise RuntimeError(f"{self.name} exited early; log {self.log_path}:\n{tail}")

    def wait_until(self, ready: Callable[[], bool], timeout: float = 60) -> None:
        """Until ``ready()``; raises with the log's tail if the server exits first.
        Not mirakuru's ``wait_for``: that has one deadline per executor, counted
        from ``start()``, where a server here is waited on for one condition
        after another (every worker has logged that it is up, then the probe
        answers), each with its own timeout, while others boot beside it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s; see {self.log_path}")

    def pids(self) -> list[int]:
        """The process and all its descendants (workers, forked children)."""
        if self.process is None:
            return []
        return _tree(self.process.pid)

    def stop(self, grace: float = 10) -> None:
        """SIGTERM to the process group, ``grace`` seconds to exit, then SIGKILL
        to the group and to every descendant mirakuru finds by its marker."""
        if self.process is None or self._executor is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace)
        # Workers may outlive a master that died first: sweep the whole group
        # (mirakuru's kill() signals the group only while the master runs, and
        # nginx's workers do not carry its marker: nginx clears their environment).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._executor.kill()
        if self._log is not None:
            self._log.close()


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = proc_stat(int(entry.name))
        if stat is not None:
            children.setdefault(int(stat[1]), []).append(int(entry.name))
    return children


def _tree(root: int) -> list[int]:
    children = _children_map()
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, []))
    return found


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is [0], ppid [1])."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


# --- readiness probes ----------------------------------------------------------------
# mirakuru's TCPExecutor and HTTPExecutor hold one such check each, inside a
# start() that blocks until it passes; a stack starts its servers side by side
# and needs several checks per server (workers logged, then HTTP or gRPC
# health), so the probes are plain callables for Server.wait_until.


def http_ok(port: int, path: str) -> Callable[[], bool]:
    def probe() -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", path)
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    return probe


def grpc_serving(address: str) -> Callable[[], bool]:
    def probe() -> bool:
        with grpc.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
            except grpc.RpcError:
                return False
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    return probe


def log_count(server: Server, marker: str, count: int) -> Callable[[], bool]:
    """Every worker has said it is up: with SO_REUSEPORT a connection made before
    the last worker listens would pin its client to the early ones for good."""
    return lambda: server.log_text().count(marker) >= count
