"""Reading a Prometheus scrape in tests, and ports for the servers they start."""

import socket
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

# This suite's own side ports (servers it starts on fixed ports).
SIDE_PORTS = range(19200, 19300)


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``
    (0 when there is none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and labels.items() <= found.labels.items():
                total += found.value
    return total


def scrape(port: int, host: str = "127.0.0.1") -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        body: bytes = response.read()
        return body.decode()


def side_ports(count: int) -> list[int]:
    """``count`` free ports of the side range."""
    found: list[int] = []
    for port in SIDE_PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise RuntimeError("no free side port")


def side_port() -> int:
    return side_ports(1)[0]
