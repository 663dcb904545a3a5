"""``manage.py`` in a child process, with a clean deployment environment."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Variables a child must not inherit from the test run (the MariaDB + Redis pass
# sets some): each test says what it wants.
_DROPPED_PREFIXES = ("ARCANA_", "JWT_", "DATABASE_", "REDIS_", "DJANGO_")


def run_manage(
    *args: str, settings: str = "arcana.settings.test", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    child = {
        key: value for key, value in os.environ.items() if not key.startswith(_DROPPED_PREFIXES)
    }
    child.update({"DJANGO_SETTINGS_MODULE": settings, **(env or {})})
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=child,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The one-line message a process stopped with: the last line of stderr, which
    Python ends a traceback with, minus the exception's class."""
    assert result.returncode != 0, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    kind, _, message = last.partition(": ")
    assert kind == "django.core.exceptions.ImproperlyConfigured", last
    return message
