"""A compose project under podman, for the container tests of layered and
microservices mode: the real docker/compose.<mode>.yml with its podman
override (docker/podman/compose.<mode>.yml), made by ``podman-compose``
(Debian's 1.0.3), with what 1.0.3 does not do done here:

- ``depends_on`` conditions: 1.0.3 starts every container at once (ordered by
  their number of dependencies) and waits for nothing. Here podman-compose
  only creates them (``up --no-start``), and each is started once its
  dependencies hold: ``service_healthy`` polls ``podman healthcheck run``
  (podman schedules health checks with systemd timers, absent here, so
  nothing else would run them), ``service_completed_successfully`` waits for
  exit status 0, ``service_started`` for the container running.
- ``stop_grace_period``: 1.0.3 passes no stop timeout to podman (its default
  is 10 s) and its ``down`` stops with 1 s. Here each container is stopped
  with its own grace period, dependants first.
- 1.0.3 reports a failed ``podman create`` only in its output, and its
  ``down`` leaves the networks and anonymous volumes: every container is checked to
  exist, and the networks are removed by their project label.

Nothing is pulled (``--pull=never``): mysql:8.4, redis:7 and nginx:1.27 are
local stand-ins (scripts/standins.sh). Names are prefixed ``arcana-ctr-``;
the public ports are the first free ones from 18000-18099 on 127.0.0.1,
handed to the compose files as ``ARCANA_PUBLISH_*``. The secrets are
docker/secrets/ (``make compose-secrets``); the MySQL volume is made fresh
for every run and removed after it.
"""

import json
import re
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.containers.podman import PODMAN_ENV, ROOT, podman
from tests.support.servers import _bindable as bindable

DOCKER = ROOT / "docker"
APP_IMAGE = "${ARCANA_IMAGE:-arcana:latest}"  # the app services' image in the compose files
PORT_RANGE = range(18000, 18100)
# podman-compose prints every podman command; it is kept in a log instead.
COMPOSE_TIMEOUT = 600.0
START_TIMEOUT = 240.0  # for the whole start, every wait included


def duration(text: str) -> float:
    """Seconds of a compose duration (``30s``, ``1m30s``, ``500ms``)."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)", text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"not a compose duration: {text!r}")
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
    return sum(float(number) * scale[unit] for number, unit in parts)


def free_ports(count: int, first: int) -> list[int]:
    """``count`` ports of 18000-18099 from ``first`` on that nothing holds on 127.0.0.1."""
    ordered = [p for p in PORT_RANGE if p >= first] + [p for p in PORT_RANGE if p < first]
    found = [port for port in ordered if bindable(port)][:count]
    if len(found) < count:
        raise AssertionError(f"fewer than {count} free ports in 18000-18099")
    return found


@dataclass
class Project:
    """One mode's compose project: ``arcana-ctr-<mode>``."""

    mode: str
    env: dict[str, str]  # the shell environment the compose files read (ARCANA_PUBLISH_*)
    extra: list[Path] = field(default_factory=list)  # test-only override files
    log: Path | None = None  # podman-compose's output

    @property
    def name(self) -> str:
        return f"arcana-ctr-{self.mode}"

    @property
    def files(self) -> list[Path]:
        return [DOCKER / f"compose.{self.mode}.yml", DOCKER / "podman" / f"compose.{self.mode}.yml"]

    @cached_property
    def services(self) -> dict[str, dict[str, Any]]:
        """The compose file's services (the override changes no order and no grace)."""
        document = yaml.safe_load(self.files[0].read_text())
        services: dict[str, dict[str, Any]] = document["services"]
        return services

    def apps(self) -> list[str]:
        return [name for name, s in self.services.items() if s.get("image") == APP_IMAGE]

    def long_running(self) -> list[str]:
        """Services that keep running (the one-shot jobs have ``restart: "no"``)."""
        return [name for name, s in self.services.items() if s.get("restart") != "no"]

    def container(self, service: str) -> str:
        return f"{self.name}_{service}_1"  # podman-compose 1.0.3's naming

    def compose(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = ["podman-compose", "-p", self.name]
        for path in [*self.files, *self.extra]:
            command += ["-f", str(path)]
        command += ["--podman-run-args=--pull=never", *args]
        done = subprocess.run(
            command,
            env={**PODMAN_ENV, **self.env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=COMPOSE_TIMEOUT,
        )
        if self.log is not None:
            with self.log.open("a") as out:
                out.write(
                    f"$ {' '.join(command)}\n{done.stdout}{done.stderr}\nexit {done.returncode}\n"
                )
        if done.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)}: exit {done.returncode}\n{done.stderr[-3000:]}"
            )
        return done

    # --- order ---------------------------------------------------------------------------

    def depends(self, service: str) -> dict[str, str]:
        raw = self.services[service].get("depends_on") or {}
        if isinstance(raw, list):  # the short form: started
            return dict.fromkeys(raw, "service_started")
        return {name: spec.get("condition", "service_started") for name, spec in raw.items()}

    def start_order(self) -> list[str]:
        """Every service after what it depends on (file order among equals)."""
        order: list[str] = []
        pending = list(self.services)
        while pending:
            ready = [s for s in pending if set(self.depends(s)) <= set(order)]
            if not ready:
                raise AssertionError(f"dependency cycle among {pending}")
            order += ready
            pending = [s for s in pending if s not in ready]
        return order

    def grace(self, service: str) -> float:
        return duration(str(self.services[service].get("stop_grace_period", "10s")))

    # --- state ---------------------------------------------------------------------------

    def inspect(self, service: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(podman("inspect", self.container(service)).stdout)
        return found[0]

    def state(self, service: str) -> dict[str, Any]:
        state: dict[str, Any] = self.inspect(service)["State"]
        return state

    def healthy(self, service: str) -> bool:
        """One run of the container's health check (``podman healthcheck run``)."""
        return podman("healthcheck", "run", self.container(service), check=False).returncode == 0

    def logs(self, service: str) -> str:
        done = podman("logs", self.container(service), check=False)
        return done.stdout + done.stderr

    def _failed(self, service: str, why: str) -> AssertionError:
        return AssertionError(f"{self.container(service)} {why}\n{self.logs(service)[-4000:]}")

    def wait(self, service: str, condition: str, deadline: float) -> None:
        """Until ``service`` meets a depends_on ``condition``."""
        while time.monotonic() < deadline:
            state = self.state(service)
            if condition == "service_completed_successfully":
                if state["Status"] == "exited":
                    if state["ExitCode"] != 0:
                        raise self._failed(service, f"exited {state['ExitCode']}")
                    return
            elif state["Status"] != "running":
                raise self._failed(service, f"is {state['Status']}, not running")
            elif condition == "service_started" or self.healthy(service):
                return
            time.sleep(0.5)
        raise self._failed(service, f"not {condition} in time")

    # --- up and down -----------------------------------------------------------------------

    def up(self) -> dict[str, float]:
        """Create everything with podman-compose, then start each service once
        its dependencies hold, and wait until every long-running one is
        healthy. Seconds each phase took: down (leftovers), create, start."""
        phases, started = {}, time.monotonic()
        self.down()  # what an interrupted run left
        phases["down"], started = time.monotonic() - started, time.monotonic()
        self.compose("up", "--no-start", "--no-build")
        missing = [
            s
            for s in self.services
            if podman("container", "exists", self.container(s), check=False).returncode
        ]
        assert not missing, f"podman-compose created no container for {missing} (see {self.log})"
        phases["create"], started = time.monotonic() - started, time.monotonic()
        deadline = started + START_TIMEOUT
        met: set[tuple[str, str]] = set()
        for service in self.start_order():
            for dependency, condition in self.depends(service).items():
                if (dependency, condition) not in met:
                    self.wait(dependency, condition, deadline)
                    met.add((dependency, condition))
            podman("start", self.container(service))
        for service in self.start_order():
            if service in self.long_running():
                self.wait(service, "service_healthy", deadline)
            else:
                self.wait(service, "service_completed_successfully", deadline)
        phases["start"] = time.monotonic() - started
        return phases

    def labelled(self, kind: str) -> list[str]:
        label = f"label=io.podman.compose.project={self.name}"
        if kind == "container":
            listed = podman("ps", "--all", "--filter", label, "--format", "{{.Names}}")
        else:
            listed = podman(kind, "ls", "--filter", label, "--format", "{{.Name}}")
        return listed.stdout.split()

    def stop(self, services: Iterable[str]) -> None:
        """``podman stop`` with each service's stop_grace_period, in the order given."""
        existing = set(self.labelled("container"))
        for service in services:
            if self.container(service) in existing:
                grace = self.grace(service)
                podman(
                    "stop", "--time", str(int(grace)), self.container(service), timeout=grace + 60
                )

    def down(self) -> None:
        """Stop (dependants first, each with its grace period), then remove the
        project's containers with their anonymous volumes (the stand-ins'
        VOLUME), its named volumes and its networks -- podman-compose 1.0.3's
        ``down`` leaves the first and the last."""
        self.stop(reversed(self.start_order()))
        for container in self.labelled("container"):
            podman("rm", "--force", "--volumes", container)
        for volume in self.labelled("volume"):
            podman("volume", "rm", "--force", volume)
        for network in self.labelled("network"):
            podman("network", "rm", "--force", network)

    def save_logs(self, directory: Path) -> None:
        for service in self.services:
            (directory / f"{self.container(service)}.log").write_text(self.logs(service))


def running(project: Project, directory: Path, config: pytest.Config) -> Iterator[Project]:
    """``project`` up for the test module, then down (logs kept in
    ``directory``); how long each took is printed past pytest's capture."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def say(line: str) -> None:
        if reporter is None or capture is None:
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)

    project.log = directory / "podman-compose.log"
    try:
        started = time.monotonic()
        phases = project.up()
        took = time.monotonic() - started
        parts = ", ".join(f"{phase} {seconds:.1f}s" for phase, seconds in phases.items())
        say(f"\n{project.name}: up and healthy in {took:.1f}s ({parts})")
        yield project
    finally:
        try:
            project.save_logs(directory)
        finally:
            started = time.monotonic()
            project.down()
            say(f"{project.name}: down in {time.monotonic() - started:.1f}s; logs in {directory}")
