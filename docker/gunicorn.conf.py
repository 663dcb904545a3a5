"""gunicorn settings for the REST process; every value can be set by env."""

import contextlib
import errno
import os
import select
import shutil
import signal
import socket
import tempfile
from typing import Any

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
# Threaded workers keep client connections alive (the sync worker closes each
# one after a single response) and overlap a request's database and cache
# waits with other requests; Django is thread-safe, one DB connection per thread.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# In-flight requests get this long to finish after SIGTERM.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "0"))
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-")
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn's control socket (gunicornc, 25.1+) defaults to $HOME/.gunicorn/:
# on the image's read-only root that fails with an error at every start, and
# nothing here needs it. Off unless GUNICORN_CONTROL_SOCKET names its path
# (in a container: under the writable /tmp).
_control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not _control_socket
if _control_socket:
    control_socket = _control_socket


# --- Prometheus metrics across workers ---
# Each worker counts into files of PROMETHEUS_MULTIPROC_DIR and /metrics sums
# them all (arcana/core/metrics.py). Set in the master's on_starting, before
# any worker imports prometheus-client, which reads it once (not when this file
# is read: a process that only reads it, a test, must not inherit the
# variable). Unset, a directory of our own is made and removed on exit; set (a
# volume, say), it is emptied at start so a restart does not add up the last
# run's counts.
_multiproc: dict[str, Any] = {"dir": "", "own": False}


def on_starting(server: Any) -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    own = not directory
    if own:
        directory = tempfile.mkdtemp(prefix="arcana-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    _multiproc.update(dir=directory, own=own)
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            # Missing: another master clearing the same directory.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))


def when_ready(server: Any) -> None:
    """REST_METRICS_PORT (and REST_METRICS_HOST, 127.0.0.1 by default): the
    master also serves every worker's metrics, summed, on a port of its own,
    without /metrics' address or token check, for a scraper that reaches pods
    and containers by their own address, as the gRPC and tier processes'
    GRPC_METRICS_PORT does. Unset, /metrics on the HTTP port is the only one."""
    port = os.environ.get("REST_METRICS_PORT", "")
    enabled = os.environ.get("METRICS_ENABLED", "true").strip().lower()
    if not port or enabled in {"false", "0", "no", "off"}:
        return
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise SystemExit(f"REST_METRICS_PORT must be a port number (1-65535), got {port!r}")
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=_multiproc["dir"])  # type: ignore[no-untyped-call]
    host = os.environ.get("REST_METRICS_HOST", "127.0.0.1")
    try:
        start_http_server(int(port), addr=host, registry=registry)
    except OSError as exc:
        raise SystemExit(
            f"REST_METRICS_PORT: cannot serve metrics on {host}:{port}: {exc}"
        ) from None
    server.log.info("serving metrics on %s:%s", host, port)


def child_exit(server: Any, worker: Any) -> None:
    # A dead worker's live gauges stop counting; its counters stay in the sum.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _multiproc["dir"])  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    if _multiproc["own"]:
        shutil.rmtree(_multiproc["dir"], ignore_errors=True)


# --- graceful shutdown: refuse new connections at once, answer the queued ones ---
# Workers share the listening socket. On SIGTERM the master closes its copy, but
# each worker keeps its own open while it drains in-flight requests (up to
# graceful_timeout), and the kernel keeps completing handshakes into the queue
# meanwhile; when the last worker exits, every connection still queued is reset
# after its client has sent a request (ECONNRESET: not refused, not answered).
# So on SIGTERM a worker takes what is queued (gthread can: its thread pool
# answers them) and then shuts the shared socket down, for every process at
# once: from then on new connections are refused (ECONNREFUSED), cleanly.


def _stop_listening(worker: Any) -> None:
    for listener in worker.sockets:
        if listener.sock is None:
            # Closed already: a second SIGTERM (the master forwards one, and a
            # supervisor that signals the whole group, as systemd does, sends
            # its own) arrives while the worker exits.
            continue
        try:
            if hasattr(worker, "enqueue_req"):  # gthread: hand the queue to its pool
                for _ in range(1024):
                    if not select.select([listener], [], [], 0)[0]:
                        break
                    worker.accept(listener)
            listener.sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already shut down by a sibling worker
            pass


def post_worker_init(worker: Any) -> None:
    graceful_exit = signal.getsignal(signal.SIGTERM)
    accept = worker.accept

    def accept_unless_shut_down(*args: Any) -> None:
        # A socket shut down by any worker stays readable and accept() fails
        # with EINVAL: nothing to take, not a reason for the worker to crash.
        try:
            accept(*args)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise

    worker.accept = accept_unless_shut_down  # before run() registers it with its poller

    def on_sigterm(signum: int, frame: Any) -> None:
        if callable(graceful_exit):
            graceful_exit(signum, frame)  # first stop the worker's own accept loop
        _stop_listening(worker)

    signal.signal(signal.SIGTERM, on_sigterm)
