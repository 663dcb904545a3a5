"""The process's Prometheus metrics (prometheus-client), and cheap ways to count.

Every metric of the project is defined here, on one registry per process
(:func:`current`), so that a forked worker can start afresh
(:func:`enable_multiprocess`): prometheus-client picks how a value is stored
(in memory, or in a file of ``PROMETHEUS_MULTIPROC_DIR`` that the exposing
process sums over every worker) when the value is made, and a worker forked
from a parent that already made some would otherwise count into memory nobody
reads.

The hot path stays cheap: label children are bound once per label set and
kept (``_bound``), and timings use ``time.perf_counter_ns``. Nothing here
imports a transport; the REST middleware, the gRPC interceptor and the
``/metrics`` view (``arcana.observe``) build on it, and the services and the
repository count through the small functions at the end.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds: a cache read takes ~0.1 ms, an internal hop ~1 ms, a login ~50 ms.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
DB_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)
_NS = 1e-9


class Metrics:
    """The metric families of one process, on their own registry."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        if not multiprocess_dir():
            # In multiprocess mode the exposing process reports its own.
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.http_requests = Counter(
            "arcana_http_requests",
            "REST requests answered, by route (the URL pattern), method and status.",
            ("route", "method", "status"),
            registry=registry,
        )
        self.http_duration = Histogram(
            "arcana_http_request_duration_seconds",
            "REST request latency, by route and method.",
            ("route", "method"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.grpc_calls = Counter(
            "arcana_grpc_calls",
            "gRPC calls finished, by server (public or internal), method and status code.",
            ("server", "method", "code"),
            registry=registry,
        )
        self.grpc_duration = Histogram(
            "arcana_grpc_call_duration_seconds",
            "gRPC call latency, by server and method.",
            ("server", "method"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.grpc_in_flight = Gauge(
            "arcana_grpc_in_flight_calls",
            "gRPC calls being served now.",
            ("server",),
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.db_queries = Counter(
            "arcana_db_queries",
            "SQL statements run, by database alias.",
            ("alias",),
            registry=registry,
        )
        self.db_duration = Histogram(
            "arcana_db_query_duration_seconds",
            "SQL statement latency, by database alias.",
            ("alias",),
            buckets=DB_BUCKETS,
            registry=registry,
        )
        self.cache_reads = Counter(
            "arcana_cache_reads",
            "Cache-aside reads, by cache and result (hit or miss).",
            ("cache", "result"),
            registry=registry,
        )
        self.throttled = Counter(
            "arcana_throttled_requests",
            "Requests refused by a rate limit, by scope.",
            ("scope",),
            registry=registry,
        )
        self.lockouts = Counter(
            "arcana_lockouts",
            "Login lockouts: 'locked' when failures lock an account, 'refused' for "
            "each attempt refused while locked.",
            ("event",),
            registry=registry,
        )
        self.login_failures = Counter(
            "arcana_login_failures",
            "Credential checks that failed (unknown email, wrong password, inactive).",
            registry=registry,
        )
        # Label children bound once per family: .labels() costs a lock, a
        # check of every label and a dict lookup.
        self._bound: dict[int, dict[tuple[str, ...], Any]] = {}

    def bound(self, family: Any, *labels: str) -> Any:
        """``family.labels(*labels)``, kept for the next call."""
        children = self._bound.get(id(family))
        if children is None:
            children = self._bound.setdefault(id(family), {})
        child = children.get(labels)
        if child is None:
            child = children[labels] = family.labels(*labels)
        return child


_current: Metrics | None = None
_making = threading.Lock()


def current() -> Metrics:
    """This process's metrics, made on first use (once: two sets counting
    side by side would each write their own total into a worker's file)."""
    global _current
    metrics = _current
    if metrics is None:
        with _making:
            if _current is None:
                _current = Metrics()
            metrics = _current
    return metrics


def multiprocess_dir() -> str:
    return os.environ.get(MULTIPROC_ENV, "")


def enable_multiprocess(directory: str) -> None:
    """Count into files under ``directory`` from now on (in this process and
    the ones it forks later), and forget the metrics made so far.

    For a process that forks its workers after Django has started
    (``grpcrunserver --workers N``): prometheus-client reads the variable
    once, at import, which is too early there."""
    global _current
    os.environ[MULTIPROC_ENV] = directory
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    _current = None


def disable_multiprocess() -> None:
    """Undo :func:`enable_multiprocess` in this process: count in memory again,
    and stop handing the (soon removed) directory to processes started later."""
    global _current
    os.environ.pop(MULTIPROC_ENV, None)
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    _current = None


def reset() -> None:
    """Forget this process's metrics (a forked child starts from zero)."""
    global _current
    _current = None


def exposition_registry() -> CollectorRegistry:
    """What a scrape reads: every worker's files summed in multiprocess
    mode, else this process's own registry."""
    directory = multiprocess_dir()
    if not directory:
        return current().registry
    sweep_dead_processes(directory)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's: alive
        return True
    return True


def sweep_dead_processes(directory: str) -> list[int]:
    """Drop the live gauges of every process that counted into ``directory``
    and is gone, as :func:`process_dead` would: for a server whose master is
    not told when a worker dies (granian respawns one without a hook), so a
    scrape must not keep counting a dead worker's in-flight requests. Its
    counters stay in the sum. Returns the pids swept."""
    pids: set[int] = set()
    for name in os.listdir(directory):
        if name.startswith("gauge_live") and name.endswith(".db"):
            digits = name[: -len(".db")].rpartition("_")[2]
            if digits.isdigit():
                pids.add(int(digits))
    dead = sorted(pid for pid in pids if not _alive(pid))
    for pid in dead:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
    return dead


def exposition() -> tuple[bytes, str]:
    """The text a scrape gets, and its content type."""
    return generate_latest(exposition_registry()), CONTENT_TYPE_LATEST


def process_dead(pid: int) -> None:
    """A worker exited: drop its live gauges (multiprocess mode only)."""
    directory = multiprocess_dir()
    if directory:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def counts_by_process(directory: str, sample: str) -> dict[int, float]:
    """The value of counter sample ``sample`` (``"arcana_grpc_calls_total"``)
    per worker pid in a multiprocess ``directory``: how evenly the workers
    share the load, which the summed scrape cannot tell."""
    from prometheus_client.mmap_dict import MmapedDict

    counts: dict[int, float] = {}
    for name in os.listdir(directory):
        if not (name.startswith("counter_") and name.endswith(".db")):
            continue
        pid = int(name[len("counter_") : -len(".db")])
        path = os.path.join(directory, name)
        for key, value, *_ in MmapedDict.read_all_values_from_file(path):  # type: ignore[no-untyped-call]
            if json.loads(key)[1] == sample:
                counts[pid] = counts.get(pid, 0.0) + value
    return counts


def clear_multiprocess_dir(directory: str) -> None:
    """Remove the files of an earlier run: counters restart with the server."""
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.unlink(os.path.join(directory, name))


# --- what the rest of the code counts ------------------------------------------------

# METRICS_ENABLED=false (arcana.observe sets this at start-up): nothing counts.
_enabled = True


def set_enabled(enabled: bool) -> None:
    global _enabled
    _enabled = enabled


def cache_read(*, cache: str, hit: bool) -> None:
    if _enabled:
        metrics = current()
        metrics.bound(metrics.cache_reads, cache, "hit" if hit else "miss").inc()


def throttled(*, scope: str) -> None:
    if _enabled:
        metrics = current()
        metrics.bound(metrics.throttled, scope).inc()


def lockout(*, event: str) -> None:
    if _enabled:
        metrics = current()
        metrics.bound(metrics.lockouts, event).inc()


def login_failed() -> None:
    if _enabled:
        current().login_failures.inc()


def query_timer(alias: str) -> Callable[..., Any]:
    """A ``connection.execute_wrapper`` that counts and times every statement
    on ``alias``."""

    def timed(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        metrics = current()
        started = time.perf_counter_ns()
        try:
            return execute(sql, params, many, context)
        finally:
            elapsed = (time.perf_counter_ns() - started) * _NS
            metrics.bound(metrics.db_queries, alias).inc()
            metrics.bound(metrics.db_duration, alias).observe(elapsed)

    timed.arcana_query_timer = True  # type: ignore[attr-defined]  # found again by install
    return timed


class GrpcMeters:
    """One gRPC server's call metrics (``server``: ``"public"`` or
    ``"internal"``), its label children found once per method and status code
    rather than per call (every call of a server pays this, and every
    internal hop): :meth:`started` when a call begins, :meth:`finished` with
    what it returned when it ends."""

    def __init__(self, server: str) -> None:
        self.server = server
        # (the Metrics bound to, the in-flight gauge, method -> (duration,
        # code -> counter)), replaced whole when the process's Metrics are
        # (a fork's reset), so no thread sees a mix.
        self._bound: tuple[Metrics | None, Any, dict[str, tuple[Any, dict[str, Any]]]] = (
            None,
            None,
            {},
        )

    def started(self) -> Any:
        """Count the call in flight; returns what :meth:`finished` takes."""
        metrics = current()
        bound = self._bound
        if bound[0] is not metrics:
            bound = self._bound = (metrics, metrics.grpc_in_flight.labels(self.server), {})
        bound[1].inc()
        return bound

    def finished(self, started: Any, method: str, code: str, seconds: float) -> None:
        metrics, gauge, methods = started
        gauge.dec()
        found = methods.get(method)
        if found is None:
            found = methods[method] = (metrics.grpc_duration.labels(self.server, method), {})
        duration, calls = found
        counter = calls.get(code)
        if counter is None:
            counter = calls[code] = metrics.grpc_calls.labels(self.server, method, code)
        counter.inc()
        duration.observe(seconds)


def http_request(*, route: str, method: str, status: int, seconds: float) -> None:
    metrics = current()
    metrics.bound(metrics.http_requests, route, method, str(status)).inc()
    metrics.bound(metrics.http_duration, route, method).observe(seconds)
