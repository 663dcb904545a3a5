"""The Grafana dashboard is what bench/dashboard.py makes, and asks only for
metrics the processes export."""

import json
import re

from arcana.core.metrics import Metrics
from bench.dashboard import DASHBOARD_JSON, PANELS, dashboard_text

# What Prometheus names a family's samples.
_SUFFIXES = ("_total", "_bucket", "_sum", "_count", "")


def test_the_committed_dashboard_is_fresh() -> None:
    assert DASHBOARD_JSON.read_text() == dashboard_text(), "run: python -m bench.dashboard"
    assert len(json.loads(DASHBOARD_JSON.read_text())["panels"]) == len(PANELS)


def test_every_query_names_an_exported_metric() -> None:
    families = {
        family.name for family in Metrics().registry.collect() if family.name.startswith("arcana_")
    }
    exported = {name + suffix for name in families for suffix in _SUFFIXES}
    asked = {
        name
        for panel in PANELS
        for _, expr in panel.targets
        for name in re.findall(r"\barcana_[a-z_]+", expr)
    }
    assert asked
    assert asked <= exported, sorted(asked - exported)
