"""A real Prometheus (Debian's package) scrapes a running layered stack: every
tier's metrics port and the controller's /metrics, and PromQL over them gives
each tier's request rate and p99 latency."""

import time
from pathlib import Path
from typing import Any

from tests.live.conftest import checked_stack, live_database_url
from tests.support.prometheus import prometheus_binary, query, running_prometheus, scraped

LOGINS = 12
READS = 30
WINDOW = "[1m]"


def _by_job(result: list[dict[str, Any]]) -> dict[str, float]:
    return {sample["metric"].get("job", ""): float(sample["value"][1]) for sample in result}


def test_prometheus_sees_a_rate_and_a_p99_per_tier(tmp_path: Path) -> None:
    assert prometheus_binary(), "scripts/bootstrap.sh --dev installs Debian's prometheus"
    with (
        checked_stack(
            live_database_url(),
            tmp_path / "logs",
            mode="layered",
            metrics=True,
            rest_workers=2,
            grpc_workers=1,
            database_prefix="obs_live",
        ) as stack,
        running_prometheus(stack.metrics_targets, tmp_path / "prometheus") as port,
    ):
        jobs = sorted(stack.metrics_targets)
        assert jobs == ["controller-grpc", "controller-rest", "repository", "service"]
        scraped(port, jobs)
        for _ in range(LOGINS):  # controller -> service -> repository, each time
            status, _ = stack.rest_json(
                "POST",
                "/api/v1/auth/login",
                {"email": stack.admin_email, "password": stack.password},
            )
            assert status == 200
        for _ in range(READS):
            status, _ = stack.rest_json(
                "GET", f"/api/v1/users/{stack.admin_id}", token=stack.admin_token
            )
            assert status == 200
        time.sleep(3)  # two scrapes more (every second)

        logins = _by_job(
            query(
                port,
                'sum by (job) (arcana_http_requests_total{route=~".*login.*", status="200"})',
            )
        )
        # Both workers' counts, summed; live_stack's own login for the admin's token too.
        assert logins == {"controller-rest": LOGINS + 1}
        rates = _by_job(
            query(port, f"sum by (job) (rate(arcana_http_requests_total{WINDOW}))")
        ) | _by_job(
            query(
                port, f'sum by (job) (rate(arcana_grpc_calls_total{{server="internal"}}{WINDOW}))'
            )
        )
        for job in ("controller-rest", "service", "repository"):
            assert rates.get(job, 0) > 0, (job, rates)
        p99 = _by_job(
            query(
                port,
                "histogram_quantile(0.99, sum by (job, le) "
                f"(rate(arcana_http_request_duration_seconds_bucket{WINDOW})))",
            )
        ) | _by_job(
            query(
                port,
                "histogram_quantile(0.99, sum by (job, le) "
                f'(rate(arcana_grpc_call_duration_seconds_bucket{{server="internal"}}{WINDOW})))',
            )
        )
        for job in ("controller-rest", "service", "repository"):
            assert 0 < p99.get(job, 0) < 10, (job, p99)
        # The service tier's calls include the repository's: it cannot be faster.
        assert p99["service"] >= p99["repository"] * 0.5
        queries = _by_job(query(port, "sum by (job) (arcana_db_queries_total)"))
        assert queries.get("repository", 0) > 0
        assert "service" not in queries or queries["service"] == 0  # no database there
