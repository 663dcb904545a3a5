"""What the container tests share: running podman with the project's
settings, the public health probes, and SIGTERM under load to a container
(tests/live/test_shutdown.py's check, through a published port).
"""

import http.client
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent.parent
# podman's default ulimits exceed this sandbox's limits (scripts/image.sh).
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": str(ROOT / "docker" / "podman" / "containers.conf")}
SERVING = health_pb2.HealthCheckResponse.SERVING


def podman(
    *args: str, check: bool = True, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["podman", *args], env=PODMAN_ENV, capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {done.returncode}\n{done.stderr[-3000:]}")
    return done


def rest_health_on(port: int) -> int:
    """GET /healthz on 127.0.0.1:``port``: its status, or 0 when nothing answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status
    except OSError:
        return 0
    finally:
        connection.close()


def grpc_health(port: int) -> int:
    """The gRPC health status of the server on 127.0.0.1:``port``; -1 when none answers."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
        except grpc.RpcError:
            return -1
        return int(reply.status)


# --- SIGTERM under load -------------------------------------------------------------------

GRACE = 5
Terminate = Callable[[str], tuple[float, float, int]]


def terminate_container(name: str) -> tuple[float, float, int]:
    """SIGTERM to the container's PID 1 (the server: the entry point execs it);
    (signal time, seconds until it exited, exit code)."""
    signalled = time.monotonic()
    podman("kill", "--signal", "TERM", name)
    code = int(podman("wait", name, timeout=GRACE + 30).stdout.strip())
    return signalled, time.monotonic() - signalled, code


def stop_container(grace: float) -> Terminate:
    """``podman stop --time GRACE``: SIGTERM, SIGKILL after the grace period, as
    compose stops a service (its ``stop_grace_period``); a stop by the user, so
    no restart policy brings the container back."""

    def stop(name: str) -> tuple[float, float, int]:
        signalled = time.monotonic()
        podman("stop", "--time", str(int(grace)), name, timeout=grace + 30)
        took = time.monotonic() - signalled
        code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        return signalled, took, int(code)

    return stop


# What a client sees of a connection the forwarder accepted and then dropped
# without a byte: a reset or a close (tests/live/test_shutdown.py's words);
# and of a connection to a published port whose forwarding rule still names
# the stopped container's address (rootful podman's DNAT, until its clean-up):
# no route to host, or no answer at all, while connecting.
UNREACHABLE = "unreachable while connecting"
CONNECT_TIMEOUT = 0.5  # a connection attempt on 127.0.0.1 that takes longer went nowhere
UNANSWERED = frozenset({"broken: ConnectionResetError", "closed without an answer", UNREACHABLE})


def forwarded(outcomes: Any, signalled: float) -> Any:
    """The outcomes as through a direct port: the published port's forwarder
    accepts a connection while the container runs and drops it without a byte
    when nothing listens inside any more. A call sent after the signal and so
    dropped is that refusal (tests/live/test_shutdown.py checks, on direct
    ports, that the server itself never drops one); a call sent before the
    signal and dropped stays a lost call."""
    from tests.live.test_shutdown import REFUSED

    outcomes.seen = [
        (kind, REFUSED, started, finished)
        if outcome in UNANSWERED and started > signalled
        else (kind, outcome, started, finished)
        for kind, outcome, started, finished in outcomes.seen
    ]
    return outcomes


def resets_too(call: Callable[[], str]) -> Callable[[], str]:
    """``call`` (a tests/live/test_shutdown.py ``rest_caller``), with a failed
    connect -- a reset, no route to host, a time-out: the forwarder's, never a
    direct port's -- as an outcome instead of an exception in the caller's
    thread. The caller catches everything after the connect itself, so such a
    request was never sent."""

    def wrapped() -> str:
        try:
            return call()
        except ConnectionResetError:
            return "broken: ConnectionResetError"
        except OSError:
            return UNREACHABLE

    return wrapped


def sigterm_under_load(
    name: str,
    calls: dict[str, Any],
    *,
    unmatched: str = "",
    terminate: Terminate = terminate_container,
    linger: float = 1.0,
) -> None:
    """``calls`` in a closed loop from three threads each, ``terminate`` to
    the container midway, then tests/live/test_shutdown.py's check: every call
    answered in full or refused, exit 0 within the grace period. The calls go
    on for ``linger`` seconds after the container is gone."""
    from tests.live.test_shutdown import Hammer, check, report

    load = Hammer(calls, 3)
    try:
        time.sleep(1.5)
        signalled, took, code = terminate(name)
        time.sleep(linger)  # keep calling the dead port for a while
        outcomes = forwarded(load.stop(), signalled)
    finally:
        load.stopping.set()
    report(f"{name} (SIGTERM)", outcomes, signalled, took, code)
    try:
        check(outcomes, signalled, took, code, unmatched=unmatched)
    except AssertionError as exc:
        late = [(kind, seen, round(t0 - signalled, 3)) for kind, seen, t0, _ in outcomes.failures()]
        restarts = podman("inspect", "--format", "{{.RestartCount}}", name, check=False).stdout
        logs = podman("logs", "--tail", "40", name, check=False)
        raise AssertionError(
            f"{exc}\nfailures, sent at (s after SIGTERM): {late[:20]}\n"
            f"{name}: restarts {restarts.strip()}; last logs:\n{logs.stdout}{logs.stderr}"
        ) from None
