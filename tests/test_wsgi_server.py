"""arcana.wsgi_server: the REST server's settings from the environment, and
the start-ups it refuses (each with one line naming the variable)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from arcana import wsgi_server
from arcana.wsgi_server import REPLACED, Config, ConfigError, MetricsDirectory

ROOT = Path(settings.BASE_DIR)
EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 - what the settings say, not a bind


def test_the_defaults_are_the_deployed_shape() -> None:
    config = Config.from_env({})
    shape = (config.host, config.port, config.workers, config.threads)
    assert shape == (EVERY_INTERFACE, 8000, 2, 4)
    options = config.granian_options()
    assert options["target"] == "arcana.wsgi:application"
    assert options["blocking_threads"] == 4
    assert options["workers_kill_timeout"] == 20
    assert options["respawn_failed_workers"] is True  # a crashed worker comes back
    assert options["workers_lifetime"] is None
    assert options["workers_max_rss"] is None
    assert options["log_access"] is False  # the application logs each request itself
    assert config.metrics_port == 0


def test_every_variable_reaches_granian() -> None:
    config = Config.from_env(
        {
            "REST_BIND": "127.0.0.1:9000",
            "REST_WORKERS": "3",
            "REST_THREADS": "8",
            "REST_BACKLOG": "2048",
            "REST_GRACEFUL_TIMEOUT": "5",
            "REST_WORKERS_LIFETIME": "3600",
            "REST_WORKERS_MAX_RSS": "512",
            "REST_ACCESS_LOG": "true",
            "REST_METRICS_PORT": "9102",
            "REST_METRICS_HOST": EVERY_INTERFACE,
        }
    )
    options = config.granian_options()
    assert (options["address"], options["port"], options["workers"]) == ("127.0.0.1", 9000, 3)
    assert (options["blocking_threads"], options["backlog"]) == (8, 2048)
    assert options["workers_kill_timeout"] == 5
    assert (options["workers_lifetime"], options["workers_max_rss"]) == (3600, 512)
    assert options["log_access"] is True
    assert (config.metrics_host, config.metrics_port) == (EVERY_INTERFACE, 9102)


def test_an_ipv6_bind_is_taken_without_its_brackets() -> None:
    assert (Config.from_env({"REST_BIND": "[::]:8000"}).host) == "::"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REST_BIND": "8000"}, "REST_BIND must be HOST:PORT (e.g. 0.0.0.0:8000), got '8000'"),
        ({"REST_BIND": "h:0"}, "REST_BIND must be HOST:PORT (e.g. 0.0.0.0:8000), got 'h:0'"),
        ({"REST_WORKERS": "0"}, "REST_WORKERS must be a whole number from 1 to 256, got '0'"),
        ({"REST_THREADS": "four"}, "REST_THREADS must be a whole number from 1 to 512, got 'four'"),
        (
            {"REST_GRACEFUL_TIMEOUT": "-1"},
            "REST_GRACEFUL_TIMEOUT must be a whole number from 1 to 3600, got '-1'",
        ),
        (
            {"REST_WORKERS_LIFETIME": "30"},
            "REST_WORKERS_LIFETIME must be 0 (never) or at least 60 seconds, got 30",
        ),
        ({"REST_ACCESS_LOG": "maybe"}, "REST_ACCESS_LOG must be true or false, got 'maybe'"),
        (
            {"REST_METRICS_PORT": "nine"},
            "REST_METRICS_PORT must be a port number (1-65535), got 'nine'",
        ),
        (
            {"REST_METRICS_PORT": "70000"},
            "REST_METRICS_PORT must be a port number (1-65535), got '70000'",
        ),
        (
            {"GUNICORN_WORKERS": "2"},
            "GUNICORN_WORKERS belongs to gunicorn, which no longer serves REST: use REST_WORKERS",
        ),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else "",
)
def test_a_bad_value_is_refused_with_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Config.from_env(env)
    assert str(refused.value) == message


def test_every_replaced_gunicorn_variable_names_its_replacement() -> None:
    for old, new in REPLACED.items():
        with pytest.raises(ConfigError, match=f"^{old} belongs to gunicorn.*: use "):
            Config.from_env({old: ""})  # set at all, even empty
        assert new


def test_metrics_off_means_no_master_metrics_port() -> None:
    config = Config.from_env({"METRICS_ENABLED": "false", "REST_METRICS_PORT": "nine"})
    assert config.metrics_port == 0  # not even read


def test_main_stops_with_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert wsgi_server.main([], {"REST_WORKERS": "none"}) == 2
    assert capsys.readouterr().err == (
        "arcana.wsgi_server: REST_WORKERS must be a whole number from 1 to 256, got 'none'\n"
    )
    for argv in (["--workers", "4"], ["arcana.wsgi"], ["a:b", "c:d"]):
        assert wsgi_server.main(argv, {}) == 2
        assert "takes one optional argument, the WSGI application as MODULE:NAME" in (
            capsys.readouterr().err
        )


def test_a_taken_metrics_port_stops_the_start_before_any_worker(tmp_path: Path) -> None:
    with socket.socket() as taken, socket.socket() as free:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        free.bind(("127.0.0.1", 0))
        rest_port = free.getsockname()[1]
        free.close()
        env = {
            **os.environ,
            "REST_BIND": f"127.0.0.1:{rest_port}",
            "REST_METRICS_PORT": str(taken.getsockname()[1]),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        }
        done = subprocess.run(
            [sys.executable, "-m", "arcana.wsgi_server"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "arcana.wsgi_server: REST_METRICS_PORT: cannot serve metrics on 127.0.0.1:"
    )
    assert "Spawning worker" not in done.stderr
    assert "Traceback" not in done.stderr


def _unset_multiproc_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    # setenv first: a bare delenv of an absent variable records nothing to undo.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "unset after the test")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")


def test_reading_the_config_leaves_the_environment_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    _unset_multiproc_dir(monkeypatch)
    Config.from_env(os.environ).granian_options()
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_a_directory_of_its_own_is_made_and_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    from arcana.core import metrics

    _unset_multiproc_dir(monkeypatch)
    directory = MetricsDirectory()
    try:
        path = Path(directory.open())
        assert path.is_dir()
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(path)
    finally:
        directory.close()
        metrics.disable_multiprocess()
    assert not path.exists()


def test_a_given_directory_is_emptied_and_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from arcana.core import metrics

    (tmp_path / "counter_123.db").write_bytes(b"last run")
    (tmp_path / "notes.txt").write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    directory = MetricsDirectory()
    try:
        assert directory.open() == str(tmp_path)
    finally:
        directory.close()
        metrics.disable_multiprocess()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]
