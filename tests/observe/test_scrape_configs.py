"""The compose files' Prometheus configurations scrape services that exist
and serve metrics there."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings

DOCKER = Path(settings.BASE_DIR) / "docker"
MODES = ("monolithic", "layered", "microservices")


def _targets(config: dict) -> dict[str, int]:  # type: ignore[type-arg]
    found: dict[str, int] = {}
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                found[host] = int(port)
        for dns in job.get("dns_sd_configs", []):
            for name in dns["names"]:
                found[name] = int(dns["port"])
    return found


@pytest.mark.parametrize("mode", MODES)
def test_every_target_is_a_compose_service_serving_metrics_there(mode: str) -> None:
    config = yaml.safe_load((DOCKER / "prometheus" / f"prometheus.{mode}.yml").read_text())
    services = yaml.safe_load((DOCKER / f"compose.{mode}.yml").read_text())["services"]
    targets = _targets(config)
    assert targets
    for host, port in targets.items():
        assert host in services, host
        service = services[host]
        # Every process's metrics port: GRPC_* for gRPC and tier processes,
        # REST_* for the REST server's master; never the HTTP port (its /metrics
        # checks the scraper's address or token).
        assert port == 9100, host
        role = service["command"][0]
        variable = {"grpc": "GRPC", "tier": "GRPC", "rest": "REST"}[role]
        assert str(service["environment"][f"{variable}_METRICS_PORT"]) == "9100", host
        assert service["environment"][f"{variable}_METRICS_HOST"] == "0.0.0.0", host  # noqa: S104


@pytest.mark.parametrize("mode", MODES)
def test_promtool_accepts_the_configuration(mode: str) -> None:
    # Debian's prometheus ships promtool (scripts/bootstrap.sh --dev installs it).
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: scripts/bootstrap.sh --dev installs Debian's prometheus"
    result = subprocess.run(
        [promtool, "check", "config", str(DOCKER / "prometheus" / f"prometheus.{mode}.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
