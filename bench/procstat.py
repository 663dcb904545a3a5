"""What the benchmark's processes cost, read from /proc (CPU and resident
memory per process, the machine's busy and stolen time), and how its own bare
servers (the floors) wait to be stopped. Starting and stopping the servers it
measures is ``tests.support.servers``, shared with the live tests."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType

from tests.support.servers import proc_stat

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (what a bench server process waits on)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    return stop


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (the ones still alive)."""
    total = 0
    for pid in pids:
        stat = proc_stat(pid)
        if stat is not None:
            total += int(stat[11]) + int(stat[12])  # utime, stime
    return total / CLOCK_TICKS


def pids_named(*names: str) -> list[int]:
    """Processes by command name (the database and cache servers, for CPU accounting)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry.name}/comm").read_text().strip()
        except OSError:
            continue
        if comm in names:
            found.append(int(entry.name))
    return found


def machine_busy() -> tuple[float, float, float]:
    """(busy, stolen, total) jiffies of all CPUs since boot, from /proc/stat.
    Stolen time is a virtual machine's CPU taken by its neighbours."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    steal = fields[7]
    total = sum(fields[:8])  # guest time is already inside user
    return float(total - idle - steal), float(steal), float(total)


def rss_bytes(pids: list[int]) -> int:
    """Resident memory (VmRSS) summed over these processes (the ones still alive).
    Forked workers share pages, so this over-counts in absolute terms; it is
    meant for comparing one tree with itself over time."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
                break
    return total
