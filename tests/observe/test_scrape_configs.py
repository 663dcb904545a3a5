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
        if port == 9100:  # a gRPC or tier process's metrics port
            assert service["command"][0] in ("grpc", "tier"), host
            assert str(service["environment"]["GRPC_METRICS_PORT"]) == "9100", host
        else:
            assert (service["command"][0], port) == ("rest", 8000), host


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
