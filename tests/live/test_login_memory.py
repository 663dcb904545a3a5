"""A login's Argon2id block in huge pages: the REST server as deployed
(``GLIBC_TUNABLES`` from docker/Dockerfile) against the same server without it.

A server process maps each hash's 19 MiB afresh (glibc hands a block that
large to ``mmap`` and back at ``free``); in 4 KiB pages that is about 4,900
page faults per login, which cost this VM about 20 ms of CPU. With
``glibc.malloc.hugetlb=1`` malloc asks for transparent huge pages on it. Where
the kernel's THP is "never" the variable must at least change nothing.
"""

import http.client
import json
from pathlib import Path

import pytest

from tests.support.servers import Server, free_port
from tests.support.stack import LiveStack, rest_server, wait_rest_ready

pytestmark = pytest.mark.live

LOGINS = 12
THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def minor_faults(server: Server) -> int:
    """Minor page faults of ``server``'s process tree so far."""
    total = 0
    for pid in server.pids():
        stat = Path(f"/proc/{pid}/stat").read_text()
        total += int(stat.rsplit(")", 1)[1].split()[7])
    return total


def faults_per_login(server: Server, port: int, email: str, password: str) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps({"email": email, "password": password})
    headers = {"Content-Type": "application/json", "Host": "127.0.0.1"}

    def login() -> None:
        connection.request("POST", "/api/v1/auth/login", body, headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status

    for _ in range(3):  # warm: the worker's first requests load what they need
        login()
    before = minor_faults(server)
    for _ in range(LOGINS):
        login()
    connection.close()
    return (minor_faults(server) - before) / LOGINS


def test_a_login_faults_its_argon2_block_in_huge_pages(stack: LiveStack, tmp_path: Path) -> None:
    assert stack.env["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"  # as the image sets it
    servers = {}
    for name, env in (
        ("deployed", stack.env),
        ("plain", {k: v for k, v in stack.env.items() if k != "GLIBC_TUNABLES"}),
    ):
        port = free_port()
        server = rest_server(env, port, tmp_path / f"{name}.log", workers=1)
        server.start()
        servers[name] = (server, port)
    try:
        faults = {}
        for name, (server, port) in servers.items():
            wait_rest_ready(server, port, 1)
            faults[name] = faults_per_login(server, port, stack.admin_email, stack.password)
    finally:
        for server, _ in servers.values():
            server.stop()
    print(f"\nminor page faults per login: {faults}")
    if "[never]" in THP.read_text():
        assert faults["deployed"] <= faults["plain"] * 1.2 + 50
    else:
        # 19 MiB in 4 KiB pages is 4,864 faults; in 2 MiB pages about ten.
        assert faults["plain"] > 3000, faults
        assert faults["deployed"] < faults["plain"] / 5, faults
