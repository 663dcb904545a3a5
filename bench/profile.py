"""``--profile``: sample the server workers with py-spy during measurements.

py-spy is not a project dependency (``pip install py-spy`` into the venv to use
it). It records collapsed stacks, from which this module ranks frames by the
share of samples they appear in (inclusive) and are on top of (self).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

RATE = 200  # samples per second per process
_LINE_NUMBER = re.compile(r":\d+\)$")


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


def start(
    pids: list[int], seconds: float, out_dir: Path, name: str
) -> list[subprocess.Popen[bytes]]:
    binary = py_spy()
    if binary is None:
        raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
    out_dir.mkdir(parents=True, exist_ok=True)
    recorders = []
    for pid in pids:
        recorders.append(
            subprocess.Popen(  # noqa: S603  (our own argv, no shell)
                [
                    binary,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(max(1, round(seconds))),
                    "--rate",
                    str(RATE),
                    "--format",
                    "raw",
                    # Only the thread holding the GIL: where the Python CPU goes, not
                    # who is waiting on a socket (those waits show as lower throughput).
                    "--gil",
                    # Sampling without pausing the target keeps the measurement honest.
                    "--nonblocking",
                    "--output",
                    str(out_dir / f"{name}-{pid}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    return recorders


def finish(recorders: list[subprocess.Popen[bytes]]) -> None:
    for recorder in recorders:
        try:
            recorder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait()


def _frame(raw: str) -> str:
    """``func (path/to/module.py:123)`` -> ``func (module.py)``, for grouping."""
    name, _, where = raw.partition(" (")
    where = _LINE_NUMBER.sub(")", f"({where}")
    short = where.strip("()").rsplit("site-packages/", 1)[-1]
    return f"{name} ({short})"


def summarize(files: list[Path], top: int = 30) -> list[tuple[str, float, float]]:
    """``(frame, inclusive %, self %)`` over these recordings: the ``top`` frames by
    self share, then the ``top`` by inclusive share below 90% (above that it is
    the server's scaffolding, on every stack)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for path in files:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [_frame(part) for part in stack.split(";") if part]
            if not frames:
                continue
            total += count
            for frame in set(frames):
                inclusive[frame] += count
            own[frames[-1]] += count
    if not total:
        return []
    chosen = [frame for frame, _ in own.most_common(top)]
    chosen += [
        frame
        for frame, count in inclusive.most_common()
        if count < 0.9 * total and frame not in chosen
    ][:top]
    return [(frame, 100 * inclusive[frame] / total, 100 * own[frame] / total) for frame in chosen]
