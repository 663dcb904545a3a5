"""A client generated from the OpenAPI schema with openapi-python-client type-
checks (mypy --strict) in a short program, and that program works against a
live server: register -> login -> me -> list."""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

from users.models import User

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
JOURNEY = ROOT / "tests" / "client" / "journey.py"
PACKAGE = "arcana_cloud_api_client"
ADMIN = ("root@example.com", "a long and unusual passphrase 42")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated client's project folder (its package inside)."""
    work = tmp_path_factory.mktemp("client")
    schema = SchemaGenerator(urlconf="arcana.api_urls").get_schema(request=None, public=True)
    (work / "schema.json").write_text(json.dumps(schema, default=str))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [
            str(BIN / "openapi-python-client"),
            *("generate", "--path", "schema.json", "--output-path", "client", "--overwrite"),
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    return work / "client"


def test_the_generated_client_type_checks_strictly(generated: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(JOURNEY)],
        cwd=generated,  # outside the project: its mypy settings do not apply
        env={**os.environ, "MYPYPATH": str(generated)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the seeded roles stay
def test_the_generated_client_works_end_to_end(generated: Path, live_server: Any) -> None:
    User.objects.create_superuser(email=ADMIN[0], name="Root", password=ADMIN[1])
    sys.path.insert(0, str(generated))
    try:
        journey: Any = importlib.import_module("tests.client.journey")
        found = journey.journey(
            live_server.url,
            name="Generated Client",
            email="generated@example.com",
            password="violet otter harbour lantern 7319",
            admin=ADMIN,
        )
    finally:
        sys.path.remove(str(generated))
        for name in [module for module in sys.modules if module.startswith(PACKAGE)]:
            del sys.modules[name]
    assert found == 1
