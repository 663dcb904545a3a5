"""tests/support/servers.py's Server, which starts every server the live
tests and benchmarks run through mirakuru: the process gets exactly the
environment it is given, runs in a session of its own (so it is stopped as a
group), writes to its log, and stop() sends SIGTERM, waits, then kills
whatever is left, including workers that outlive their master."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.servers import PYTHON, ROOT, SETPRIV, Server
from tests.support.waiting import wait_for


def script(tmp_path: Path, name: str, body: str, env: dict[str, str] | None = None) -> Server:
    return Server(
        name,
        [PYTHON, "-c", body],
        {"PATH": os.environ["PATH"], **(env or {})},
        tmp_path / f"{name}.log",
    )


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_server_gets_exactly_its_environment_and_a_session_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the test process holds must not leak into a server that is not given it
    # (a tier without the database must not see the test's DATABASE_URL).
    monkeypatch.setenv("DATABASE_URL", "mysql://root@127.0.0.1:3306/not_for_the_tier")
    server = script(
        tmp_path,
        "env",
        "import json, os; print(json.dumps({'env': dict(os.environ), 'sid': os.getsid(0),"
        " 'pid': os.getpid()}), flush=True); import time; time.sleep(60)",
        {"ARCANA_TIER": "service"},
    )
    server.start()
    try:
        # No Python code runs in the forked child (mirakuru's default is a
        # preexec_fn): setpriv, or only where it is missing a prctl hook.
        assert server._executor is not None
        assert server._executor._popen_kwargs["preexec_fn"] is None or SETPRIV is None
        assert server._executor._popen_kwargs["start_new_session"] is True
        server.wait_until(lambda: server.log_text().strip() != "", timeout=30)
        seen = json.loads(server.log_text())
    finally:
        server.stop(grace=2)
    assert "DATABASE_URL" not in seen["env"]
    assert seen["env"]["ARCANA_TIER"] == "service"
    # PATH, the variable given, mirakuru's marker; nothing of the test's environment.
    assert set(seen["env"]) - {"PATH", "ARCANA_TIER", "LC_CTYPE"} == {"mirakuru_uuid"}
    assert seen["sid"] == seen["pid"]  # a session (and process group) of its own


def test_stop_gives_sigterm_its_grace_then_kills_the_group(tmp_path: Path) -> None:
    # A master that ignores SIGTERM, and a worker in its group that outlives it.
    server = script(
        tmp_path,
        "stubborn",
        "import os, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import signal, time;"
        " signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)'])\n"
        "print('worker', child.pid, flush=True)\n"
        "time.sleep(120)\n",
    )
    server.start()
    server.wait_until(lambda: "worker" in server.log_text(), timeout=30)
    worker = int(server.log_text().split()[1])
    assert server.process is not None
    master = server.process.pid
    started = time.monotonic()
    server.stop(grace=1)
    took = time.monotonic() - started
    assert 1 <= took < 10, took  # the grace was given, then no more
    assert not alive(master)
    wait_for(lambda: not alive(worker), timeout=5)


def test_a_server_that_exits_early_is_reported_with_its_log(tmp_path: Path) -> None:
    server = script(tmp_path, "early", "import sys; print('cannot bind', flush=True); sys.exit(3)")
    server.start()
    with pytest.raises(RuntimeError, match=r"early exited early(?s:.*)cannot bind"):
        server.wait_until(lambda: False, timeout=30)
    server.stop()


def test_a_server_that_answers_sigterm_stops_within_its_grace(tmp_path: Path) -> None:
    server = script(
        tmp_path,
        "polite",
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: (print('bye', flush=True), sys.exit(0)))\n"
        "print('up', flush=True)\n"
        "time.sleep(120)\n",
    )
    server.start()
    server.wait_until(lambda: "up" in server.log_text(), timeout=30)
    started = time.monotonic()
    server.stop(grace=20)
    assert time.monotonic() - started < 10
    assert "bye" in server.log_text()
    assert server.process is not None
    assert server.process.returncode == 0


def test_exiting_leaves_other_runs_servers_alone(tmp_path: Path) -> None:
    # A process marked as mirakuru marks servers, its marker containing the
    # exiting process's pid as a substring (as another run's marker can): only
    # mirakuru's exit hook, which tests.support.servers turns off, would kill it.
    code = (
        "import os, subprocess, sys\n"
        "import tests.support.servers\n"
        "marker = f'9{os.getpid()}:another-run'\n"
        "sleeper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " env={**os.environ, 'mirakuru_uuid': marker}, start_new_session=True,"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(sleeper.pid, flush=True)\n"
    )
    done = subprocess.run(
        [PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    sleeper = int(done.stdout.split()[0])
    try:
        assert alive(sleeper)
    finally:
        os.kill(sleeper, signal.SIGKILL)
