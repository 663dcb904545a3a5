"""The bench's verdict lines (bench/report.py) judge what they say they judge."""

import math

import pytest

from bench import load
from bench.report import (
    FLOOR_TARGET,
    GRPC_FLOOR_TARGET,
    LOGIN_P50_TARGET_MS,
    Result,
    Target,
    _verdicts,
    runs_table,
    targets,
)


def result(
    kind: str, operation: str, p50_ms: float, concurrency: int = 1, rps: float = 20.0
) -> Result:
    nan = math.nan
    return Result(
        kind=kind,
        mode=load.MONOLITHIC if kind in (load.REST, load.GRPC) else "",
        operation=operation,
        concurrency=concurrency,
        ok=100,
        errors=0,
        duration=5.0,
        rps=rps,
        p50_ms=p50_ms,
        p99_ms=p50_ms * 2,
        mean_ms=p50_ms,
        server_cpu_ms=nan,
        backend_cpu_ms=nan,
        client_cpu_ms=nan,
        machine_busy_pct=nan,
        machine_steal_pct=nan,
        db_statements=nan,
        cache_commands=nan,
        worker_cpu_split=(),
        first_error=None,
    )


@pytest.mark.parametrize(
    ("p50", "verdict"),
    [(LOGIN_P50_TARGET_MS - 20, "met"), (LOGIN_P50_TARGET_MS + 1, "MISSED")],
)
def test_login_p50_is_judged_at_concurrency_1(p50: float, verdict: str) -> None:
    results = [
        result(load.REST, load.LOGIN, p50),
        result(load.GRPC, load.LOGIN, 10.0),
        result(load.REST, load.LOGIN, 999.0, concurrency=8),  # not the one judged
    ]
    _floors, targets = _verdicts(results)
    rest = [line for line in targets if line.startswith("REST login p50")]
    grpc = [line for line in targets if line.startswith("gRPC login p50")]
    assert len(rest) == 1, targets
    assert rest[0].endswith(f"-> {verdict}"), targets
    assert grpc == [f"gRPC login p50 <= {LOGIN_P50_TARGET_MS:.0f} ms at conc 1: 10.0 ms -> met"]


def _floor_run(rest: float, grpc: float, rest_floor: float, grpc_floor: float) -> list[Result]:
    return [
        result(kind, load.GET, 1.0, concurrency, rps)
        for concurrency in (1, 8)
        for kind, rps in (
            (load.REST, rest),
            (load.GRPC, grpc),
            (load.REST_FLOOR, rest_floor),
            (load.GRPC_FLOOR, grpc_floor),
        )
    ]


def test_the_floors_are_judged_at_both_concurrencies_each_protocol_on_its_own_goal() -> None:
    # REST exactly at its goal; gRPC at REST's goal, which is below its own.
    found = {t.name: t for t in targets(_floor_run(75.0, 78.0, 100.0, 100.0))}
    for at in (1, 8):
        assert found[f"REST get-by-id >= {FLOOR_TARGET}x its floor at conc {at}"].met
        grpc = found[f"gRPC get-by-id >= {GRPC_FLOOR_TARGET}x its floor at conc {at}"]
        assert grpc.value == pytest.approx(0.78)
        assert not grpc.met


def test_a_target_counts_over_runs_only_if_every_run_met_it() -> None:
    runs = [
        [Target("a", 2.0, 1.5), Target("b", 1.0, 1.5)],
        [Target("a", 1.4, 1.5), Target("b", 1.6, 1.5)],
        [Target("a", 1.6, 1.5), Target("b", 1.7, 1.5)],
    ]
    text, markdown = runs_table(runs)
    lines = {line.split("|")[1].strip(): line for line in markdown.splitlines()[2:]}
    assert lines["a"].rstrip(" |").endswith("MISSED"), markdown
    assert "1.40x MISSED" in lines["a"], markdown
    assert lines["b"].rstrip(" |").endswith("MISSED"), markdown
    met = runs_table([runs[0][:1], runs[2][:1]])[1]
    assert met.splitlines()[-1].rstrip(" |").endswith("met"), met
    assert "run 3" in text
    assert "all 3" in text
