"""The session's own checks (tests/conftest.py) hold with and without
pytest-xdist: a secret logged by a test or a skipped test fails the run, and
the figures the tests record are printed, also when the test ran in a worker process
(``make test`` runs ``-n auto``)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

CONFTEST = """\
from tests.conftest import (  # noqa: F401 - the session's hooks and fixture
    figures,
    pytest_configure,
    pytest_sessionfinish,
    pytest_terminal_summary,
    pytest_testnodedown,
)
"""

PROBE = """\
import logging

import pytest


def test_records_a_figure_and_logs_a_password(figures):
    figures["probe figure"] = "42 ms"
    logging.getLogger("arcana.probe").warning("%s", "{logged}")


def test_skipped_when_asked():
    if {skip}:
        pytest.skip("asked to")
"""


def run_probe(
    tmp_path: Path, logged: str, *options: str, skip: bool = False
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_probe.py").write_text(PROBE.format(logged=logged, skip=skip))
    env = {**os.environ, "PYTHONPATH": str(REPO), "DJANGO_SETTINGS_MODULE": "arcana.settings.test"}
    env.pop("DATABASE_URL", None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            *options,
            str(tmp_path),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("options", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_a_logged_password_fails_the_session(tmp_path: Path, options: tuple[str, ...]) -> None:
    from tests.factories import DEFAULT_PASSWORD

    result = run_probe(tmp_path, f"login for {DEFAULT_PASSWORD}", *options)
    output = result.stdout + result.stderr
    assert "2 passed" in output, output
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, output
    assert "Secrets reached the logs" in output, output
    assert "probe figure: 42 ms" in output, output


@pytest.mark.parametrize("options", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_a_clean_session_passes_and_prints_its_figures(
    tmp_path: Path, options: tuple[str, ...]
) -> None:
    result = run_probe(tmp_path, "nothing secret here", *options)
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.OK, output
    assert "probe figure: 42 ms" in output, output
    assert "Secrets reached the logs" not in output, output


@pytest.mark.parametrize("options", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_a_skipped_test_fails_the_session(tmp_path: Path, options: tuple[str, ...]) -> None:
    result = run_probe(tmp_path, "nothing secret here", *options, skip=True)
    output = result.stdout + result.stderr
    assert "1 skipped" in output, output
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, output
