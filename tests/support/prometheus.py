"""A real Prometheus server (Debian's ``prometheus``) for a run: its scrape
configuration made from a stack's targets, started on a port of ours with a
data directory of its own, and PromQL through its HTTP query API.

Used by ``make observe`` (``bench.observe_run``) and by the live test that
checks rates and p99 latencies per tier (``tests/live/test_prometheus.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.servers import Server, free_port

SCRAPE_SECONDS = 1.0


def prometheus_binary() -> str | None:
    return shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )


def scrape_config(targets: Mapping[str, Sequence[str]], interval: float = SCRAPE_SECONDS) -> str:
    """prometheus.yml scraping ``targets`` (job -> host:port list) every
    ``interval`` seconds, each job's metrics at /metrics. JSON is YAML."""
    return json.dumps(
        {
            "global": {"scrape_interval": f"{interval:g}s", "evaluation_interval": "5s"},
            "scrape_configs": [
                {
                    "job_name": job,
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": list(addresses)}],
                }
                for job, addresses in sorted(targets.items())
            ],
        },
        indent=2,
    )


@contextmanager
def running_prometheus(
    targets: Mapping[str, Sequence[str]], directory: Path, *, port: int | None = None
) -> Iterator[int]:
    """Prometheus scraping ``targets``, on 127.0.0.1:``port`` (a free one if
    None), until the block ends; yields its port once it is ready."""
    binary = prometheus_binary()
    if binary is None:
        raise RuntimeError("prometheus is not installed (scripts/bootstrap.sh --dev installs it)")
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "prometheus.yml"
    config.write_text(scrape_config(targets))
    port = port or free_port()
    server = Server(
        "prometheus",
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        directory / "prometheus.log",
    )
    server.start()
    try:
        server.wait_until(lambda: _ready(port), 60)
        yield port
    finally:
        server.stop(5)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _api(port: int, endpoint: str, parameters: dict[str, str]) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/{endpoint}?{urllib.parse.urlencode(parameters)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"{parameters['query']}: {body}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def query(port: int, promql: str, at: float | None = None) -> list[dict[str, Any]]:
    """An instant query's result vector: [{"metric": {...}, "value": [t, "v"]}, ...]."""
    return _api(port, "query", {"query": promql, **({"time": f"{at:.3f}"} if at else {})})


def query_range(
    port: int, promql: str, start: float, end: float, step: float
) -> list[dict[str, Any]]:
    """A range query's result matrix: [{"metric": {...}, "values": [[t, "v"], ...]}, ...]."""
    span = {"start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
    return _api(port, "query_range", {"query": promql, **span})


def scraped(port: int, jobs: Sequence[str], timeout: float = 30) -> None:
    """Wait until every job's targets are up in Prometheus."""
    deadline = time.monotonic() + timeout
    while True:
        up = {sample["metric"]["job"] for sample in query(port, "up == 1")}
        if set(jobs) <= up:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"targets not up after {timeout:g}s: {sorted(set(jobs) - up)}")
        time.sleep(0.5)
