"""report.html: one well-formed, self-contained page with the six charts the issue asks for."""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from engine.config import Settings
from replay.html import bar_chart, line_chart, render_html
from simulator import simulate, write_jsonl
from tests.unit.test_replay_runner import replay_to

CHARTS = (
    "alerts per day",
    "actions by channel",
    "suppressions",
    "precision and recall per rule",
    "lead-time distribution",
    "model ROC AUC over time",
)
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"}


class Checker(HTMLParser):
    """Records every tag and fails on a closing tag that does not match the open one."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()


def check(page: str) -> Checker:
    parser = Checker()
    parser.feed(page)
    parser.close()
    assert parser.errors == []
    assert parser.stack == []
    return parser


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    base = tmp_path_factory.mktemp("html")
    events = base / "events.jsonl"
    write_jsonl(simulate(40, 20, 10), events)
    rules = base / "rules"
    shutil.copytree(Settings().rules_dir, rules)
    (rules / "assets.yaml").unlink()
    (base / "variant.yaml").write_text("name: challenger-x\nrules: rules\n")
    out = base / "out"
    return out, replay_to([events], out, compare=base / "variant.yaml", horizon_days=5)


def test_the_page_is_well_formed_self_contained_and_has_every_chart(
    compared: tuple[Path, dict[str, Any]],
) -> None:
    out, report = compared
    page = (out / "report.html").read_text(encoding="utf-8")
    parser = check(page)
    labels = [attrs.get("aria-label") for tag, attrs in parser.tags if tag == "svg"]
    for chart in CHARTS:
        assert chart in labels, chart
    # offline: no script, no external resource (the only URL is the SVG namespace)
    assert not any(tag in ("script", "link", "img", "iframe") for tag, _ in parser.tags)
    urls = set(re.findall(r"https?://[^\s\"')]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}
    assert "url(" not in page
    # the figures are the report's
    assert f">{report['alerts']['total']:,}<" in page
    for rule in report["alerts"]["by_rule"]:
        assert rule in page
    assert "Definitions" in page and "censored" in page
    # champion and challenger side by side, with the alerts only one raised
    assert "challenger-x" in page
    only = report["comparison"]["alerts_only_champion"]
    assert only["total"] > 0 and only["first"][0]["alert_id"] in page
    svgs = [attrs for tag, attrs in parser.tags if tag == "svg"]
    assert len(svgs) >= 2 * len(CHARTS)  # each variant has its own charts


def test_bars_are_drawn_to_scale_with_their_values() -> None:
    svg = bar_chart([("sms", 10.0), ("push", 5.0)], "actions")
    widths = [float(w) for w in re.findall(r'<rect x="[\d.]+" y="[\d.]+" width="([\d.]+)"', svg)]
    assert len(widths) == 2 and widths[0] == pytest.approx(2 * widths[1])
    assert "<title>sms: 10</title>" in svg


def test_a_line_chart_leaves_gaps_for_days_without_a_value() -> None:
    svg = line_chart(["2026-01-01", "2026-01-02", "2026-01-03"], {"m": [0.5, None, 0.7]}, "auc")
    assert svg.count("<circle") == 2 and "<polyline" not in svg  # two lone points, no segment
    empty = line_chart(["2026-01-01"], {"m": [None]}, "auc")
    assert "no day with both" in empty


def test_text_from_rules_and_inputs_is_escaped() -> None:
    report: dict[str, Any] = {
        "events": 1,
        "alerts": {"total": 1, "by_type": {"churn_risk": 1}, "by_rule": {"<script>x": 1}},
        "inputs": [{"source": "a&b.jsonl"}],
        "invalid": {
            "total": 1,
            "listed": 1,
            "by_reason": {"not_json": 1},
            "first": [{"source": "a&b.jsonl", "line": 3, "reason": "not_json", "message": "<x>"}],
        },
    }
    page = render_html(report)
    check(page)
    assert "<script>" not in page and "&lt;script&gt;x" in page
    assert "a&amp;b.jsonl" in page and "&lt;x&gt;" in page
