"""bench/hop.py's timing helper and table (the run itself is a benchmark, not a test)."""

from bench import hop


def _found(p50: dict[str, float]) -> dict[str, dict[str, list[float]]]:
    crossing = {name: (100.0 + index, 200.0 + index) for index, name in enumerate(hop.SERVED_BY)}
    return {
        name: {
            "p50": [p50[name]],
            "client": [crossing[name][0]] if name in crossing else [],
            "server": [crossing[name][1]] if name in crossing else [],
        }
        for name, _ in hop.CALLS
    }


def test_a_hop_is_judged_against_the_local_work_as_a_request_meets_it() -> None:
    text = hop.table(
        _found(
            {
                "echo": 0.4,
                "plain": 0.7,
                "plain_local": 0.1,
                "cached": 1.0,
                "cached_local": 0.2,
                "cached_loop": 0.05,  # shown, never subtracted
            }
        )
    )
    rows = {line[:72].strip(): line[72:].split() for line in text.splitlines()[1:-1]}
    plain = rows["hop, no I/O in the called tier (users.service.password_check)"]
    assert plain == ["0.700", "0.600", "1.50x", "101", "201"]
    cached = rows["hop, one cache read in the called tier (users.service.user_get, warm)"]
    assert cached == ["1.000", "0.800", "2.00x", "102", "202"]
    assert rows["hop floor: bare grpcio echo, mutual TLS (its own process)"] == [
        "0.400",
        "100",
        "200",
    ]
    assert rows["the same read back to back (a warm loop; no request meets it so)"] == ["0.050"]


def test_the_local_rows_are_timed_after_an_echo_and_cpu_is_counted_per_call() -> None:
    assert {"plain_local", "cached_local"} == hop.AFTER_ECHO
    order: list[str] = []
    cpu: dict[str, list[float]] = {"client": [], "server": []}
    p50 = hop._p50(
        lambda: order.append("call"),
        3,
        before=lambda: order.append("before"),
        cpu=cpu,
        server_pids=[],
    )
    assert order[-6:] == ["before", "call"] * 3  # after the untimed warm-up calls
    assert p50 >= 0
    assert len(cpu["client"]) == 1
    assert cpu["client"][0] >= 0
    assert cpu["server"] == [0.0]  # no server process given: none counted
