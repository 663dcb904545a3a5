"""``manage.py`` in a child process, with a clean deployment environment."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIER_SH = str(ROOT / "scripts" / "tier.sh")
SERVICE_SH = str(ROOT / "scripts" / "service.sh")

# Variables a child must not inherit from the test run (the MariaDB + Redis pass
# sets some): each test says what it wants.
_DROPPED_PREFIXES = ("ARCANA_", "JWT_", "DATABASE_", "REDIS_", "DJANGO_")


def child_env(settings: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment less the deployment variables, plus ``env``."""
    child = {
        key: value for key, value in os.environ.items() if not key.startswith(_DROPPED_PREFIXES)
    }
    child.update({"DJANGO_SETTINGS_MODULE": settings, **(env or {})})
    return child


def _run(
    command: list[str], settings: str, env: dict[str, str] | None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=ROOT,
        env=child_env(settings, env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_manage(
    *args: str, settings: str = "arcana.settings.test", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "manage.py", *args], settings, env)


def run_tier(
    tier: str, *args: str, settings: str = "arcana.settings.test", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``scripts/tier.sh TIER ARGS...``: manage.py with that tier's environment."""
    return _run([TIER_SH, tier, *args], settings, env)


def run_service(
    service: str,
    *args: str,
    settings: str = "arcana.settings.test",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``scripts/service.sh SERVICE ARGS...``: manage.py as that microservice."""
    return _run([SERVICE_SH, service, *args], settings, env)


def refusal(
    result: subprocess.CompletedProcess[str],
    kind: str = "django.core.exceptions.ImproperlyConfigured",
) -> str:
    """The one-line message a process stopped with: the last line of stderr, which
    Python ends a traceback with, minus the exception's class."""
    assert result.returncode != 0, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    found, _, message = last.partition(": ")
    assert found == kind, last
    return message


def command_error(result: subprocess.CompletedProcess[str]) -> str:
    """The message of a management command's ``CommandError``: one line, no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    return refusal(result, kind="CommandError")
