"""Add a panel to the Grafana dashboard for every vigil_* metric that has none yet.

    .venv/bin/python deploy/grafana/add_panels.py engine.metrics api.metrics online_models.metrics

Counters are charted as rates, histograms as p50/p99, gauges as they are. Existing panels are
kept; run it after adding metrics (tests/unit/test_docker_compose.py fails until every metric
has a panel).
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

from prometheus_client import REGISTRY

DASHBOARD = Path(__file__).parent / "dashboards" / "vigil.json"
DS = {"type": "prometheus", "uid": "${datasource}"}


def queried(dashboard: dict) -> set[str]:
    text = json.dumps([p.get("targets", []) for p in dashboard["panels"]])
    return set(re.findall(r"vigil_[a-z0-9_]+", text))


def panel(pid: int, family: object, y: int, x: int) -> dict:
    name, kind, doc = family.name, family.type, family.documentation  # type: ignore[attr-defined]
    labels = sorted({k for s in family.samples for k in s.labels if k != "le"})  # type: ignore[attr-defined]
    by = f" by ({', '.join(labels)})" if labels else ""
    if kind == "counter":
        targets = [
            {
                "expr": f"sum{by} (rate({name}_total[5m]))",
                "legendFormat": "{{" + labels[0] + "}}" if labels else name,
            }
        ]
        unit = "ops"
    elif kind == "histogram":
        targets = [
            {
                "expr": f"histogram_quantile({q}, sum by (le) (rate({name}_bucket[5m])))",
                "legendFormat": f"p{int(q * 100)}",
            }
            for q in (0.5, 0.99)
        ]
        unit = "s" if name.endswith("_seconds") else "short"
    else:
        targets = [
            {
                "expr": f"sum{by} ({name})",
                "legendFormat": "{{" + labels[0] + "}}" if labels else name,
            }
        ]
        unit = "short"
    for i, t in enumerate(targets):
        t.update({"datasource": DS, "refId": chr(65 + i), "editorMode": "code", "range": True})
    return {
        "id": pid,
        "type": "timeseries",
        "title": name.removeprefix("vigil_").replace("_", " "),
        "description": doc,
        "datasource": DS,
        "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": targets,
    }


def main(modules: list[str]) -> None:
    for module in modules:
        importlib.import_module(module)
    dashboard = json.loads(DASHBOARD.read_text())
    have = queried(dashboard)
    y = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"])
    pid = max(p["id"] for p in dashboard["panels"]) + 1
    added = 0
    for family in REGISTRY.collect():
        if not family.name.startswith("vigil_"):
            continue
        names = {family.name, f"{family.name}_total", f"{family.name}_bucket"}
        if names & have:
            continue
        dashboard["panels"].append(panel(pid, family, y + (added // 3) * 8, (added % 3) * 8))
        pid += 1
        added += 1
    DASHBOARD.write_text(json.dumps(dashboard, indent=2) + "\n")
    print(f"added {added} panels")


if __name__ == "__main__":
    main(sys.argv[1:])
