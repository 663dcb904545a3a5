"""docker/entrypoint.sh run with a stand-in ``python`` that prints
what they were started with: the command line a role runs, without its server."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"

FAKE = f"""#!{sys.executable}
import json, os, sys
print(json.dumps({{
    "program": os.path.basename(sys.argv[0]),
    "argv": sys.argv[1:],
    "pid": os.getpid(),
    "cwd": os.getcwd(),
    "env": {{k: v for k, v in os.environ.items() if k.startswith(("DJANGO_", "DATABASE_"))}},
}}))
"""


def make_fake_bin(directory: Path) -> Path:
    """``python`` in ``directory`` (made), which prints its start."""
    directory.mkdir()
    for name in ("python",):
        path = directory / name
        path.write_text(FAKE)
        path.chmod(0o755)
    return directory


def entrypoint(fake_bin: Path, *args: str, **env: str) -> tuple[int, dict[str, Any], str]:
    """Exit status, what the entry point started (empty if nothing), stderr."""
    environ = {"PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}", **env}
    process = subprocess.Popen(
        [str(ENTRYPOINT), *args],
        cwd="/",
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = process.communicate(timeout=30)
    started = json.loads(stdout) if stdout.strip() else {}
    if started:
        # exec: the server is the process that was started, so it gets the signals.
        assert started["pid"] == process.pid
    return process.returncode, started, stderr
