"""Tests of the built image run as containers with rootful podman (issue 10).

They run only when ``ARCANA_CONTAINER_IMAGE`` names an image in podman's
store (``make image`` builds ``arcana:latest``); otherwise they are
deselected -- not skipped, since a skip fails the session. They need root
(rootful podman). Monolithic mode (test_monolithic.py) runs the image with
plain ``podman run`` against the machine's MariaDB and Redis on 127.0.0.1
(the servers ``DATABASE_URL`` and ``REDIS_URL`` point to, default the CI
ones); layered and microservices mode (test_layered.py,
test_microservices.py) run the compose files with podman-compose and their
own MySQL and Redis containers (the stand-ins of scripts/standins.sh).
``make containers MODE=<mode>`` runs one mode's file.
"""

import os
from pathlib import Path

import pytest

CONTAINERS_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [item for item in items if CONTAINERS_DIR in Path(str(item.path)).parents]
    for item in mine:
        item.add_marker(pytest.mark.containers)
    if not mine or os.environ.get("ARCANA_CONTAINER_IMAGE"):
        return
    config.hook.pytest_deselected(items=mine)
    items[:] = [item for item in items if item not in mine]
    line = (
        f"containers: deselected {len(mine)} container tests: ARCANA_CONTAINER_IMAGE is not set "
        "(make image, then ARCANA_CONTAINER_IMAGE=arcana:latest; they need rootful podman)"
    )
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
    else:
        print(line)
