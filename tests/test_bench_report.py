"""The bench's verdict lines (bench/report.py) judge what they say they judge."""

import math

import pytest

from bench import load
from bench.report import LOGIN_P50_TARGET_MS, Result, _verdicts


def result(kind: str, operation: str, p50_ms: float, concurrency: int = 1) -> Result:
    nan = math.nan
    return Result(
        kind=kind,
        mode=load.MONOLITHIC,
        operation=operation,
        concurrency=concurrency,
        ok=100,
        errors=0,
        duration=5.0,
        rps=20.0,
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
