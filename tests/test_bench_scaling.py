"""bench/scaling.py's arguments, summary and table (the run itself is a
benchmark, not a test)."""

import argparse
import os

import pytest

from bench import scaling


def _result(rps: float, server_cpu_ms: float, shares: list[float]) -> dict[str, object]:
    return {
        "rps": rps,
        "server_cpu_ms": server_cpu_ms,
        "client_cpu_ms": 0.3,
        "backing_cpu_ms": 0.1,
        "others_cores": 0.5,
        "shares": shares,
    }


def _round(rest_two: float, grpc_two: float, shared: list[float]) -> dict[str, dict[str, object]]:
    return {
        "REST 1w": _result(500, 1.0, [1.0]),
        "REST 2w": _result(rest_two, 1.0, [0.51, 0.49]),
        "gRPC 1w": _result(1000, 0.8, [1.0]),
        "gRPC 2w": _result(grpc_two, 1.0, [0.5, 0.5]),
        "gRPC 2w shared port": _result(grpc_two, 1.0, shared),
    }


def test_summary_takes_medians_and_the_worst_spread() -> None:
    rounds = [_round(900, 1500, [0.5, 0.5]), _round(700, 1900, [0.75, 0.25])]
    rounds.append(_round(800, 1700, [0.55, 0.45]))
    summary = scaling.summarise(rounds)
    assert summary["REST 2w"]["rps"] == 800
    assert summary["gRPC 2w"]["rps"] == 1700
    assert summary["gRPC 2w shared port"]["max_share"] == 0.75
    assert summary["gRPC 1w"]["rps_per_server_cpu_s"] == pytest.approx(1250)


def test_table_judges_each_protocol_against_the_target() -> None:
    summary = scaling.summarise([_round(800, 1700, [0.5, 0.5])])
    text = scaling.table(summary, cpus=2)
    assert "REST: 2 workers / 1 = 1.60x (target 1.7x: missed)" in text
    assert "gRPC: 2 workers / 1 = 1.70x (target 1.7x: met)" in text
    # gRPC's 2 workers cost 1.0 ms of server CPU a request against 0.8: 0.80x.
    assert "per server CPU-second 0.80x" in text


def test_cpu_lists_must_name_cpus_this_process_may_use() -> None:
    allowed = sorted(os.sched_getaffinity(0))
    assert scaling._cpus(",".join(map(str, allowed))) == allowed
    for bad in ("", "x", "4096"):
        with pytest.raises(argparse.ArgumentTypeError):
            scaling._cpus(bad)
