"""The production HTTP server for REST and the admin: granian serving
``arcana.wsgi``, configured from the environment.

    python -m arcana.wsgi_server [MODULE:APP]     (docker/entrypoint.sh rest)

``MODULE:APP`` (default ``arcana.wsgi:application``): another WSGI
application served the same way (the benchmark's floor is one).

granian (a Rust HTTP server with a WSGI interface) replaced gunicorn here: it
answered 1.17-1.62x the requests per second on the same 2 workers x 4 threads
(``make bench-wsgi``), drains in-flight requests on SIGTERM and answers beside
200 slow clients without a gateway in front (README, "The WSGI server").

A master process binds the port, forks ``REST_WORKERS`` workers (each loads
Django itself, the master never does) and respawns one that crashes; a crash
loop (a worker dying again within seconds) stops the master with status 1, so
the container's supervisor restarts it. The master also serves every worker's
metrics, summed, on ``REST_METRICS_PORT``.

Every variable (``REST_*``, see :class:`Config`) is checked before anything
starts; a bad value stops the process with one line naming the variable. The
variables of the gunicorn configuration this replaced (``GUNICORN_*``,
``FORWARDED_ALLOW_IPS``) stop it too, with their replacement, so a deployment
that still sets them is not served with silently different settings.

Proxies: the server passes the peer's address and scheme through untouched
(no ``X-Forwarded-*`` rewriting); the application decides what to believe
from ``NUM_PROXIES`` (the throttles' client address, and ``X-Forwarded-Proto``
for HTTPS), and ``/metrics`` checks the peer itself.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

APP = "arcana.wsgi:application"

#: Variables of the replaced gunicorn configuration, and what took their place.
REPLACED = {
    "GUNICORN_BIND": "REST_BIND",
    "GUNICORN_WORKERS": "REST_WORKERS",
    "GUNICORN_THREADS": "REST_THREADS",
    "GUNICORN_WORKER_CLASS": "nothing (granian's workers are threaded)",
    "GUNICORN_TIMEOUT": "nothing (the database and cache timeouts bound a request)",
    "GUNICORN_GRACEFUL_TIMEOUT": "REST_GRACEFUL_TIMEOUT",
    "GUNICORN_MAX_REQUESTS": "REST_WORKERS_LIFETIME or REST_WORKERS_MAX_RSS",
    "GUNICORN_MAX_REQUESTS_JITTER": "REST_WORKERS_LIFETIME",
    "GUNICORN_ACCESSLOG": "REST_ACCESS_LOG",
    "GUNICORN_CONTROL_SOCKET": "nothing (no control socket)",
    "GUNICORN_CMD_ARGS": "the REST_* variables",
    "FORWARDED_ALLOW_IPS": "NUM_PROXIES (the application decides which proxies to believe)",
}

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}

logger = logging.getLogger("arcana.wsgi_server")


class ConfigError(Exception):
    """A variable with a value the server cannot use, in one line."""


def _integer(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}, got {raw!r}")
    return int(raw)


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _bind(env: Mapping[str, str]) -> tuple[str, int]:
    raw = env.get("REST_BIND", "").strip() or "0.0.0.0:8000"
    host, sep, port = raw.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"REST_BIND must be HOST:PORT (e.g. 0.0.0.0:8000), got {raw!r}")
    return host, int(port)


@dataclass(frozen=True)
class Config:
    """The server's settings, read from the environment by :meth:`from_env`."""

    host: str = "0.0.0.0"  # noqa: S104 - in a container, every interface is the point
    port: int = 8000
    #: ``REST_WORKERS``: processes, each with its own Django.
    workers: int = 2
    #: ``REST_THREADS``: threads per worker that run requests (one database
    #: connection each); more requests than that wait in the worker's queue.
    threads: int = 4
    #: ``REST_BACKLOG``: connections the kernel queues before accepting.
    backlog: int = 1024
    #: ``REST_GRACEFUL_TIMEOUT``: seconds a worker gets to answer its
    #: in-flight requests after SIGTERM before it is killed.
    graceful_timeout: int = 20
    #: ``REST_WORKERS_LIFETIME``: seconds after which a worker is replaced
    #: (gracefully, one at a time); 0: never. At least 60.
    workers_lifetime: int = 0
    #: ``REST_WORKERS_MAX_RSS``: MiB of resident memory past which a worker is
    #: replaced (gracefully); 0: no limit.
    workers_max_rss: int = 0
    #: ``REST_ACCESS_LOG``: granian's own line per request. Off by default:
    #: the application logs each request itself (``REQUEST_LOG``), with its
    #: request id and user.
    access_log: bool = False
    #: ``REST_METRICS_PORT`` (0: none) and ``REST_METRICS_HOST``: where the
    #: master serves every worker's metrics, summed, without ``/metrics``'
    #: address or token check, for a scraper that reaches pods and containers
    #: by their own address (``GRPC_METRICS_PORT``'s counterpart).
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        for old, new in REPLACED.items():
            if old in env:
                raise ConfigError(
                    f"{old} belongs to gunicorn, which no longer serves REST: use {new}"
                )
        host, port = _bind(env)
        lifetime = _integer(env, "REST_WORKERS_LIFETIME", 0, 0, 10**9)
        if 0 < lifetime < 60:
            raise ConfigError(
                f"REST_WORKERS_LIFETIME must be 0 (never) or at least 60 seconds, got {lifetime}"
            )
        metrics_on = _flag(env, "METRICS_ENABLED", True)
        metrics_port = 0
        if metrics_on and env.get("REST_METRICS_PORT", "").strip():
            raw = env["REST_METRICS_PORT"].strip()
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise ConfigError(f"REST_METRICS_PORT must be a port number (1-65535), got {raw!r}")
            metrics_port = int(raw)
        return cls(
            host=host,
            port=port,
            workers=_integer(env, "REST_WORKERS", 2, 1, 256),
            threads=_integer(env, "REST_THREADS", 4, 1, 512),
            backlog=_integer(env, "REST_BACKLOG", 1024, 128, 65535),
            graceful_timeout=_integer(env, "REST_GRACEFUL_TIMEOUT", 20, 1, 3600),
            workers_lifetime=lifetime,
            workers_max_rss=_integer(env, "REST_WORKERS_MAX_RSS", 0, 0, 10**6),
            access_log=_flag(env, "REST_ACCESS_LOG", False),
            metrics_port=metrics_port,
            metrics_host=env.get("REST_METRICS_HOST", "").strip() or "127.0.0.1",
        )

    def granian_options(self) -> dict[str, Any]:
        """Keyword arguments for ``granian.Granian``."""
        from granian.constants import Interfaces

        return {
            "target": APP,
            "address": self.host,
            "port": self.port,
            "interface": Interfaces.WSGI,
            "workers": self.workers,
            "blocking_threads": self.threads,
            "backlog": self.backlog,
            "workers_kill_timeout": self.graceful_timeout,
            "workers_lifetime": self.workers_lifetime or None,
            "workers_max_rss": self.workers_max_rss or None,
            "respawn_failed_workers": True,
            "log_access": self.access_log,
            "websockets": False,
        }


class MetricsDirectory:
    """``PROMETHEUS_MULTIPROC_DIR`` for the workers: the variable's directory,
    emptied so a restart does not add up the last run's counts, or one of our
    own (made at :meth:`open`, removed at :meth:`close`). Opened in the master
    before it forks a worker: prometheus-client picks its storage once."""

    def __init__(self) -> None:
        self.path = ""
        self.own = False

    def open(self) -> str:
        from arcana.core import metrics

        self.path = metrics.multiprocess_dir()
        self.own = not self.path
        if self.own:
            self.path = tempfile.mkdtemp(prefix="arcana-metrics-")
        else:
            os.makedirs(self.path, exist_ok=True)
            metrics.clear_multiprocess_dir(self.path)
        metrics.enable_multiprocess(self.path)
        return self.path

    def close(self) -> None:
        if self.own and self.path:
            shutil.rmtree(self.path, ignore_errors=True)


def serve_master_metrics(config: Config) -> None:
    """The summed metrics on ``REST_METRICS_PORT``; stops the start-up with
    one line when the port cannot be bound."""
    if not config.metrics_port:
        return
    from arcana.observe.server import serve_metrics

    try:
        serve_metrics(config.metrics_host, config.metrics_port)
    except OSError as exc:
        raise ConfigError(
            f"REST_METRICS_PORT: cannot serve metrics on "
            f"{config.metrics_host}:{config.metrics_port}: {exc}"
        ) from None


def _target(args: list[str]) -> str:
    if not args:
        return APP
    module, sep, name = args[0].partition(":")
    if len(args) > 1 or not sep or not module or not name.isidentifier():
        raise ConfigError(
            f"takes one optional argument, the WSGI application as MODULE:NAME "
            f"(default {APP}), got {' '.join(args)!r}; the settings are REST_* variables"
        )
    return args[0]


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    try:
        target = _target(sys.argv[1:] if argv is None else argv)
        config = Config.from_env(os.environ if env is None else env)
    except ConfigError as exc:
        print(f"arcana.wsgi_server: {exc}", file=sys.stderr)
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arcana.settings.production")
    from granian import Granian

    server = Granian(**{**config.granian_options(), "target": target})
    directory = MetricsDirectory()
    directory.open()  # before any worker is forked
    try:
        serve_master_metrics(config)
        server.serve()  # exits 1 itself on a crash loop
    except ConfigError as exc:
        print(f"arcana.wsgi_server: {exc}", file=sys.stderr)
        return 2
    finally:
        directory.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
