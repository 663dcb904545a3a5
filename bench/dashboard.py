"""The dashboard's panels, once: the Grafana dashboard JSON
(``docker/grafana/arcana.json``, ``python -m bench.dashboard`` writes it) and
the picture ``make observe`` draws from real Prometheus query results
(``docs/observe.png``; Grafana itself is not installable here, so matplotlib
renders the same PromQL)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.servers import ROOT

DASHBOARD_JSON = ROOT / "docker" / "grafana" / "arcana.json"
RATE = "[1m]"


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str  # Grafana's unit id: "reqps", "s", "ops", "percentunit"
    targets: tuple[tuple[str, str], ...]  # (legend, PromQL)


def _quantile(q: float, family: str, by: str, where: str = "") -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({family}_bucket{{{where}}}{RATE})))"


PANELS: tuple[Panel, ...] = (
    Panel(
        "Requests per second, by tier",
        "reqps",
        (
            ("{{job}} REST", f"sum by (job) (rate(arcana_http_requests_total{RATE}))"),
            ("{{job}} gRPC", f"sum by (job) (rate(arcana_grpc_calls_total{RATE}))"),
        ),
    ),
    Panel(
        "Errors per second (REST 5xx / 4xx, gRPC not OK)",
        "reqps",
        (
            (
                "{{job}} 5xx",
                f'sum by (job) (rate(arcana_http_requests_total{{status=~"5.."}}{RATE}))',
            ),
            (
                "{{job}} 4xx",
                f'sum by (job) (rate(arcana_http_requests_total{{status=~"4.."}}{RATE}))',
            ),
            ("{{job}} gRPC", f'sum by (job) (rate(arcana_grpc_calls_total{{code!="OK"}}{RATE}))'),
        ),
    ),
    Panel(
        "Latency p50 / p99, by tier",
        "s",
        (
            ("{{job}} REST p50", _quantile(0.5, "arcana_http_request_duration_seconds", "job")),
            ("{{job}} REST p99", _quantile(0.99, "arcana_http_request_duration_seconds", "job")),
            ("{{job}} gRPC p50", _quantile(0.5, "arcana_grpc_call_duration_seconds", "job")),
            ("{{job}} gRPC p99", _quantile(0.99, "arcana_grpc_call_duration_seconds", "job")),
        ),
    ),
    Panel(
        "REST p99 by route",
        "s",
        (("{{route}}", _quantile(0.99, "arcana_http_request_duration_seconds", "route")),),
    ),
    Panel(
        "Database: statements per second and p99",
        "ops",
        (
            ("{{job}} statements/s", f"sum by (job) (rate(arcana_db_queries_total{RATE}))"),
            ("{{job}} p99 (s)", _quantile(0.99, "arcana_db_query_duration_seconds", "job")),
        ),
    ),
    Panel(
        "User cache hit ratio",
        "percentunit",
        (
            (
                "{{job}}",
                f'sum by (job) (rate(arcana_cache_reads_total{{result="hit"}}{RATE})) / '
                f"sum by (job) (rate(arcana_cache_reads_total{RATE}))",
            ),
        ),
    ),
    Panel(
        "Security: throttled, lockouts, failed logins per second",
        "ops",
        (
            (
                "throttled {{scope}}",
                f"sum by (scope) (rate(arcana_throttled_requests_total{RATE}))",
            ),
            ("lockouts {{event}}", f"sum by (event) (rate(arcana_lockouts_total{RATE}))"),
            ("failed logins", f"sum(rate(arcana_login_failures_total{RATE}))"),
        ),
    ),
    Panel(
        "gRPC calls in flight",
        "short",
        (("{{job}} {{server}}", "sum by (job, server) (arcana_grpc_in_flight_calls)"),),
    ),
)


def grafana_dashboard() -> dict[str, Any]:
    """The panels as a Grafana dashboard (schema 39; a Prometheus data source
    chosen at import, ``${DS_PROMETHEUS}``)."""
    panels = []
    for index, panel in enumerate(PANELS):
        panels.append(
            {
                "id": index + 1,
                "type": "timeseries",
                "title": panel.title,
                "datasource": {"type": "prometheus", "uid": "${DS_PROMETHEUS}"},
                "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
                "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                "targets": [
                    {"refId": chr(ord("A") + number), "expr": expr, "legendFormat": legend}
                    for number, (legend, expr) in enumerate(panel.targets)
                ],
            }
        )
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "type": "datasource",
                "pluginId": "prometheus",
            }
        ],
        "title": "Arcana Cloud",
        "uid": "arcana-cloud",
        "schemaVersion": 39,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "tags": ["arcana"],
        "panels": panels,
    }


def dashboard_text() -> str:
    return json.dumps(grafana_dashboard(), indent=2) + "\n"


def _legend(template: str, metric: dict[str, str]) -> str:
    text = template
    for key, value in metric.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def draw(
    port: int, start: float, end: float, path: Path, step: float = 2.0, window: str = "15s"
) -> None:
    """Every panel from Prometheus (on ``port``) range queries over
    [``start``, ``end``], drawn with matplotlib into ``path``; rates over
    ``window`` rather than the dashboard's minute, which a short run would
    spend filling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tests.support.prometheus import query_range

    columns = 2
    rows = (len(PANELS) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(14, 3.2 * rows), squeeze=False)
    for panel, axis in zip(PANELS, axes.flat, strict=False):
        for legend, expr in panel.targets:
            for series in query_range(port, expr.replace(RATE, f"[{window}]"), start, end, step):
                points = [(float(t) - start, float(v)) for t, v in series["values"] if v != "NaN"]
                if points:
                    xs, ys = zip(*points, strict=True)
                    axis.plot(xs, ys, label=_legend(legend, series["metric"]))
        axis.set_title(panel.title, fontsize=10)
        axis.set_xlabel("seconds into the run", fontsize=8)
        axis.set_ylabel(panel.unit, fontsize=8)
        axis.tick_params(labelsize=7)
        if axis.lines:
            axis.legend(fontsize=6, loc="upper left")
    for axis in axes.flat[len(PANELS) :]:
        axis.set_visible(False)
    figure.suptitle(
        "Arcana Cloud, layered mode under a short load: the Grafana dashboard's PromQL "
        "(docker/grafana/arcana.json), drawn from a real Prometheus",
        fontsize=11,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


if __name__ == "__main__":
    DASHBOARD_JSON.parent.mkdir(parents=True, exist_ok=True)
    DASHBOARD_JSON.write_text(dashboard_text())
    print(f"wrote {DASHBOARD_JSON.relative_to(ROOT)}")
    sys.exit(0)
