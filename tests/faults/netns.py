"""A network namespace joined to the host by a veth pair, for cutting a link
between processes for real (``ip netns`` and ``ip link``: no tc, iptables or
nft on this machine).

The host side of the pair is ``10.231.0.<4k+1>/30``, the namespace side
``10.231.0.<4k+2>``, ``k`` random; names start ``h3-``. A process runs inside
with ``ip netns exec``; it has its own loopback and cannot reach the host's
127.0.0.1. :meth:`Namespace.cut` takes the namespace's end of the link down:
its address stays routed from the host (a ``linkdown`` route), so packets to
it vanish without an error, as in a partition; :meth:`Namespace.heal` brings
it back. An ``unreachable`` route for the /30, below the link's own (metric 4000),
guards against the machine's default route ever carrying the traffic instead
(here that route leads to a proxy that accepts any connection).

Needs root: creating the namespace raises when ``ip`` refuses, so a test
using it fails rather than skips.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

SUBNET = "10.231.0"
PREFIX = "h3-"


def ip(*args: str) -> str:
    """``ip ARGS``; raises with ``ip``'s message when it fails."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip() or result.returncode}")
    return result.stdout


@dataclass(frozen=True)
class Namespace:
    name: str
    host_link: str
    inner_link: str
    host_address: str
    address: str  # the namespace's, reachable from the host while the link is up
    network: str  # the /30 both are in

    def exec_argv(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def cut(self) -> None:
        ip("netns", "exec", self.name, "ip", "link", "set", self.inner_link, "down")

    def heal(self) -> None:
        ip("netns", "exec", self.name, "ip", "link", "set", self.inner_link, "up")

    def pids(self) -> list[int]:
        return [int(pid) for pid in ip("netns", "pids", self.name).split()]


@contextmanager
def namespace() -> Iterator[Namespace]:
    """A fresh namespace and link; everything removed on exit, whatever happened."""
    tag = secrets.token_hex(3)
    block = 4 * secrets.randbelow(62) + 4  # 10.231.0.4/30 .. 10.231.0.248/30
    made = Namespace(
        name=f"{PREFIX}part-{tag}",
        host_link=f"{PREFIX}{tag}h",
        inner_link=f"{PREFIX}{tag}n",
        host_address=f"{SUBNET}.{block + 1}",
        address=f"{SUBNET}.{block + 2}",
        network=f"{SUBNET}.{block}/30",
    )
    with ExitStack() as stack:
        ip("netns", "add", made.name)
        stack.callback(_remove, made)
        ip("link", "add", made.host_link, "type", "veth", "peer", "name", made.inner_link)
        ip("link", "set", made.inner_link, "netns", made.name)
        ip("addr", "add", f"{made.host_address}/30", "dev", made.host_link)
        ip("link", "set", made.host_link, "up")
        ip("route", "add", "unreachable", made.network, "metric", "4000")
        inside = ("netns", "exec", made.name, "ip")
        ip(*inside, "link", "set", "lo", "up")
        ip(*inside, "addr", "add", f"{made.address}/30", "dev", made.inner_link)
        ip(*inside, "link", "set", made.inner_link, "up")
        yield made


def _remove(made: Namespace) -> None:
    with contextlib.suppress(RuntimeError):
        for pid in made.pids():  # whatever a test left running inside
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for args in (
        ("route", "del", "unreachable", made.network, "metric", "4000"),
        ("link", "del", made.host_link),  # gone with the namespace, unless it never moved
        ("netns", "del", made.name),
    ):
        with contextlib.suppress(RuntimeError):
            ip(*args)
