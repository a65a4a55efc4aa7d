"""``report.html``: the replay report as one self-contained page (inline CSS and SVG, no script,
no external resource), so it opens offline and can be mailed around. Pure: report in, text out.

Charts are drawn here as SVG: alerts per day by type (stacked columns), actions by channel and
suppressions by reason (bars), precision and recall per rule (paired bars), the lead-time
distribution (grouped columns) and model ROC AUC over time (lines). Every mark has a ``<title>``
tooltip with its exact value.

>>> page = render_html({"events": 3, "alerts": {"total": 0, "by_type": {}, "by_rule": {}}})
>>> page.startswith("<!DOCTYPE html>") and "</html>" in page
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

PALETTE = (
    "#2f6db5",
    "#e07b28",
    "#3a9a5b",
    "#c23b3b",
    "#7d5bb5",
    "#8c6d46",
    "#d46fb0",
    "#6f7a86",
    "#b5b32f",
    "#2fb5b0",
)
FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return f"{int(value):,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:,.{digits - 1}f}"
    return str(value)


def _tick(value: float) -> str:
    """An axis label: integers without decimals.

    >>> _tick(25.0), _tick(18.75), _tick(2500.0)
    ('25', '18.75', '2,500')
    """
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _pct(value: Any) -> str:
    return "–" if value is None else f"{float(value) * 100:.1f}%"


def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value``.

    >>> _nice_max(7), _nice_max(130), _nice_max(0)
    (8.0, 150.0, 1.0)
    """
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    return float(value)


def _axis(value: float, integer: bool = True) -> tuple[float, float]:
    """A round axis top and tick step for data up to ``value`` (about four ticks).

    >>> _axis(6), _axis(130), _axis(0.7, integer=False), _axis(0)
    ((6.0, 2.0), (150.0, 50.0), (0.8, 0.2), (4.0, 1.0))
    """
    if value <= 0:
        return 4.0, 1.0
    raw = value / 4
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw - 1e-12)
    if integer:
        step = max(float(math.ceil(step)), 1.0)
    top = step * math.ceil(value / step - 1e-9)
    return round(top, 10), round(step, 10)


def _legend(names: Sequence[str], x: float, y: float) -> str:
    out = []
    cx = x
    for i, name in enumerate(names):
        color = PALETTE[i % len(PALETTE)]
        out.append(
            f'<rect x="{cx:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{color}"/>'
            f'<text x="{cx + 14:.1f}" y="{y:.1f}" font-size="11">{_e(name)}</text>'
        )
        cx += 24 + 7 * len(name)
    return "".join(out)


def _svg(width: int, height: int, body: str, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}" '
        f'style="{FONT}">{body}</svg>'
    )


def _empty(label: str, note: str = "nothing to show") -> str:
    body = (
        f'<rect x="0.5" y="0.5" width="479" height="59" fill="#fafafa" stroke="#ddd"/>'
        f'<text x="240" y="35" font-size="12" text-anchor="middle" fill="#888">{_e(note)}</text>'
    )
    return _svg(480, 60, body, label)


def bar_chart(items: Sequence[tuple[str, float]], label: str, width: int = 640) -> str:
    """Horizontal bars, one per (name, value), longest first as given."""
    if not items:
        return _empty(label)
    label_w = min(max(len(n) for n, _ in items) * 7 + 10, 260)
    row = 22
    height = row * len(items) + 30
    top = _nice_max(max(v for _, v in items))
    plot_w = width - label_w - 70
    parts = []
    for i, (name, value) in enumerate(items):
        y = 10 + i * row
        w = plot_w * value / top if top else 0
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" font-size="11" text-anchor="end">{_e(name)}'
            f"</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 7}" '
            f'fill="{PALETTE[0]}"><title>{_e(name)}: {_fmt(value)}</title></rect>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 14}" font-size="11">{_fmt(value)}</text>'
        )
    axis_y = 10 + row * len(items)
    parts.append(
        f'<line x1="{label_w}" y1="{axis_y}" x2="{label_w + plot_w}" y2="{axis_y}" stroke="#999"/>'
    )
    return _svg(width, height, "".join(parts), label)


def paired_bars(
    items: Sequence[tuple[str, Sequence[float | None]]],
    series: Sequence[str],
    label: str,
    width: int = 640,
) -> str:
    """Horizontal bars in [0, 1], one group per item, one bar per series (None: no bar)."""
    if not items:
        return _empty(label)
    label_w = min(max(len(n) for n, _ in items) * 7 + 10, 280)
    bar = 11
    group = bar * len(series) + 10
    height = group * len(items) + 50
    plot_w = width - label_w - 60
    parts = []
    for i, (name, values) in enumerate(items):
        y0 = 10 + i * group
        parts.append(
            f'<text x="{label_w - 6}" y="{y0 + group / 2 + 2:.1f}" font-size="11" '
            f'text-anchor="end">{_e(name)}</text>'
        )
        for j, value in enumerate(values):
            y = y0 + j * bar
            color = PALETTE[j % len(PALETTE)]
            if value is None:
                parts.append(
                    f'<text x="{label_w + 4}" y="{y + 9}" font-size="9" fill="#999">'
                    f"{_e(series[j])}: n/a</text>"
                )
                continue
            w = plot_w * max(min(float(value), 1.0), 0.0)
            parts.append(
                f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar - 2}" fill="{color}">'
                f"<title>{_e(name)} {_e(series[j])}: {_pct(value)}</title></rect>"
                f'<text x="{label_w + w + 3:.1f}" y="{y + 8.5:.1f}" font-size="9">'
                f"{_pct(value)}</text>"
            )
    axis_y = 10 + group * len(items)
    grid = []
    for k in range(0, 11, 2):
        x = label_w + plot_w * k / 10
        grid.append(
            f'<line x1="{x:.1f}" y1="10" x2="{x:.1f}" y2="{axis_y}" stroke="#eee"/>'
            f'<text x="{x:.1f}" y="{axis_y + 13}" font-size="10" text-anchor="middle">'
            f"{k * 10}%</text>"
        )
    parts = grid + parts  # the grid under the bars
    parts.append(_legend(series, label_w, axis_y + 32))
    return _svg(width, height, "".join(parts), label)


def stacked_columns(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    label: str,
    width: int = 900,
    height: int = 260,
) -> str:
    """Columns per category (days), stacked by series (alert types)."""
    if not categories or not series:
        return _empty(label)
    names = list(series)
    totals = [sum(series[n][i] for n in names) for i in range(len(categories))]
    top, tick = _axis(max(totals) if totals else 0)
    left, bottom, right, top_pad = 44, 46, 10, 10
    plot_w = width - left - right
    plot_h = height - bottom - top_pad
    step = plot_w / len(categories)
    bar_w = max(step * 0.8, 1.0)
    parts = []
    for k in range(round(top / tick) + 1):
        v = tick * k
        y = top_pad + plot_h - plot_h * v / top
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
            f"{_tick(v)}</text>"
        )
    for i, cat in enumerate(categories):
        x = left + i * step + (step - bar_w) / 2
        y = top_pad + plot_h
        for j, name in enumerate(names):
            v = series[name][i]
            if not v:
                continue
            h = plot_h * v / top
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[j % len(PALETTE)]}"><title>{_e(cat)} {_e(name)}: {_fmt(v)}'
                f"</title></rect>"
            )
    every = max(1, len(categories) // 12)
    for i in range(0, len(categories), every):
        x = left + i * step + step / 2
        parts.append(
            f'<text x="{x:.1f}" y="{top_pad + plot_h + 13}" font-size="10" '
            f'text-anchor="middle">{_e(categories[i][5:])}</text>'
        )
    parts.append(
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{left + plot_w}" '
        f'y2="{top_pad + plot_h}" stroke="#999"/>'
    )
    parts.append(_legend(names, left, height - 8))
    return _svg(width, height, "".join(parts), label)


def grouped_columns(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    label: str,
    width: int = 760,
    height: int = 250,
) -> str:
    """Columns per category (lead-time bins), side by side per series (alert types)."""
    if not categories or not series or not any(any(v) for v in series.values()):
        return _empty(label, "no caught outcome: no lead time to show")
    names = list(series)
    top, tick = _axis(max(max(v) for v in series.values()))
    left, bottom, right, top_pad = 40, 48, 10, 10
    plot_w = width - left - right
    plot_h = height - bottom - top_pad
    step = plot_w / len(categories)
    bar_w = step * 0.8 / len(names)
    parts = []
    for k in range(round(top / tick) + 1):
        v = tick * k
        y = top_pad + plot_h - plot_h * v / top
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
            f"{_tick(v)}</text>"
        )
    for i, cat in enumerate(categories):
        x0 = left + i * step + step * 0.1
        for j, name in enumerate(names):
            v = series[name][i]
            h = plot_h * v / top
            x = x0 + j * bar_w
            parts.append(
                f'<rect x="{x:.1f}" y="{top_pad + plot_h - h:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{PALETTE[j % len(PALETTE)]}"><title>{_e(name)} '
                f"{_e(cat)}: {_fmt(v)}</title></rect>"
            )
        parts.append(
            f'<text x="{left + i * step + step / 2:.1f}" y="{top_pad + plot_h + 13}" '
            f'font-size="9" text-anchor="middle">{_e(cat)}</text>'
        )
    parts.append(
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{left + plot_w}" '
        f'y2="{top_pad + plot_h}" stroke="#999"/>'
    )
    parts.append(_legend(names, left, height - 8))
    return _svg(width, height, "".join(parts), label)


def line_chart(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    label: str,
    width: int = 900,
    height: int = 250,
    y_max: float = 1.0,
) -> str:
    """Lines over categories (days) in [0, y_max]; None leaves a gap. A dashed line at 0.5."""
    if not categories or not series or all(v is None for s in series.values() for v in s):
        return _empty(label, "no day with both positive and negative examples")
    left, bottom, right, top_pad = 40, 46, 24, 10
    plot_w = width - left - right
    plot_h = height - bottom - top_pad
    step = plot_w / max(len(categories) - 1, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return left + i * step, top_pad + plot_h - plot_h * v / y_max

    parts = []
    for k in range(5):
        v = y_max * k / 4
        y = top_pad + plot_h - plot_h * k / 4
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
            f"{v:.2f}</text>"
        )
    _, half = xy(0, 0.5 * y_max if y_max != 1.0 else 0.5)
    parts.append(
        f'<line x1="{left}" y1="{half:.1f}" x2="{left + plot_w}" y2="{half:.1f}" '
        f'stroke="#999" stroke-dasharray="4 3"/>'
    )
    for j, (name, values) in enumerate(series.items()):
        color = PALETTE[j % len(PALETTE)]
        segment: list[str] = []
        for i, value in enumerate(values):
            if value is None:
                if len(segment) > 1:
                    parts.append(_polyline(segment, color))
                segment = []
                continue
            x, y = xy(i, value)
            segment.append(f"{x:.1f},{y:.1f}")
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"><title>{_e(name)} '
                f"{_e(categories[i])}: {value:.3f}</title></circle>"
            )
        if len(segment) > 1:
            parts.append(_polyline(segment, color))
    every = max(1, len(categories) // 12)
    for i in range(0, len(categories), every):
        x, _ = xy(i, 0)
        parts.append(
            f'<text x="{x:.1f}" y="{top_pad + plot_h + 13}" font-size="10" '
            f'text-anchor="middle">{_e(categories[i][5:])}</text>'
        )
    parts.append(_legend(list(series), left, height - 8))
    return _svg(width, height, "".join(parts), label)


def _polyline(points: Sequence[str], color: str) -> str:
    return (
        f'<polyline points="{" ".join(points)}" fill="none" stroke="{color}" stroke-width="1.8"/>'
    )


# --- the page -------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;
max-width:1000px;color:#222;line-height:1.4;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:32px;border-bottom:1px solid #ddd;
padding-bottom:4px}h3{font-size:14px;margin-top:20px}
.meta{color:#666;font-size:12px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:16px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:110px}
.card b{display:block;font-size:18px}.card span{font-size:11px;color:#666}
table{border-collapse:collapse;font-size:12px;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
td.l{text-align:left}dl{font-size:12px}dt{font-weight:600;margin-top:6px}dd{margin-left:16px}
.note{font-size:12px;color:#666}code{font-size:12px}
"""


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="l"' if i < left else ""
            cells.append(f"<td{cls}>{cell if isinstance(cell, _Raw) else _e(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class _Raw(str):
    """Already-escaped HTML inside a table cell."""


def _cards(report: Mapping[str, Any]) -> str:
    alerts = report.get("alerts") or {}
    actions = report.get("actions") or {}
    suppressed = report.get("suppressed") or {}
    invalid = report.get("invalid") or {}
    items = [
        ("events", _fmt(report.get("events"))),
        ("invalid", _fmt(invalid.get("total"))),
        ("customers", _fmt((report.get("data") or {}).get("customers"))),
        ("alerts", _fmt(alerts.get("total"))),
        ("actions", _fmt(actions.get("total"))),
        ("suppressed", _fmt(suppressed.get("total"))),
        ("events/s", _fmt(round(report.get("throughput_eps") or 0))),
        ("wall seconds", _fmt(report.get("wall_seconds"))),
    ]
    return (
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{v}</b><span>{_e(k)}</span></div>' for k, v in items)
        + "</div>"
    )


def _sorted_items(counts: Mapping[str, Any]) -> list[tuple[str, float]]:
    """Largest first, then by name; the values keep their type (counts stay integers)."""
    return sorted(((str(k), v) for k, v in counts.items()), key=lambda kv: (-kv[1], kv[0]))


def _evaluation_rows(evaluation: Mapping[str, Mapping[str, Any]]) -> list[list[Any]]:
    rows = []
    for name, m in evaluation.items():
        rows.append(
            [
                name,
                m.get("label") or "–",
                _pct(m.get("precision")),
                _pct(m.get("alert_precision")),
                _pct(m.get("recall")),
                _fmt(m.get("median_lead_hours")),
                _fmt(m.get("labelled_customers")),
                _fmt(m.get("alerts")),
                _fmt(m.get("true_positive_alerts")),
                _fmt(m.get("false_positive_alerts")),
                _fmt(m.get("censored_alerts")),
                m.get("note", ""),
            ]
        )
    return rows


EVAL_HEADER = (
    "",
    "outcome",
    "precision",
    "alert precision",
    "recall",
    "median lead h",
    "labelled customers",
    "alerts",
    "TP alerts",
    "FP alerts",
    "censored",
    "note",
)


def _h2(anchor: str, title: str) -> str:
    return f'<h2 id="{_e(anchor)}">{title}</h2>'


def _variant_sections(report: Mapping[str, Any], prefix: str = "", anchor: str = "") -> list[str]:
    out: list[str] = []
    alerts = report.get("alerts") or {}
    per_day = alerts.get("per_day") or {}
    out.append(_h2(anchor + "alerts", f"{prefix}Alerts per day by type"))
    out.append(
        stacked_columns(per_day.get("days") or [], per_day.get("by_type") or {}, "alerts per day")
    )
    out.append(
        _table(
            ["rule", "alerts"],
            [[k, _fmt(v)] for k, v in _sorted_items(alerts.get("by_rule") or {})],
        )
    )
    actions = report.get("actions") or {}
    out.append(_h2(anchor + "actions", f"{prefix}Actions by channel"))
    out.append(bar_chart(_sorted_items(actions.get("by_channel") or {}), "actions by channel"))
    out.append(
        _table(
            ["action", "chosen"],
            [[k, _fmt(v)] for k, v in _sorted_items(actions.get("by_action") or {})],
        )
    )
    suppressed = report.get("suppressed") or {}
    out.append(_h2(anchor + "suppressions", f"{prefix}Suppressions by reason"))
    out.append(
        '<p class="note">Rule suppressions (cooldown, suppress clauses) and action candidates '
        "held back for any reason but being outranked (contact policy, capacity, experiment, "
        "lead grade), as the live metric vigil_suppressions_total counts them.</p>"
    )
    out.append(bar_chart(_sorted_items(suppressed.get("by_reason") or {}), "suppressions"))

    evaluation = report.get("evaluation") or {}
    by_rule = report.get("evaluation_by_rule") or {}
    out.append(_h2(anchor + "evaluation", f"{prefix}Evaluation against outcomes"))
    out.append(
        f'<p class="note">Horizon {_fmt(report.get("horizon_days"))} days; definitions at the '
        "end of the page.</p>"
    )
    out.append(_table(EVAL_HEADER, _evaluation_rows(evaluation)))
    out.append(f"<h3>{prefix}Precision and recall per rule</h3>")
    out.append(
        paired_bars(
            [(r, (m.get("precision"), m.get("recall"))) for r, m in by_rule.items()],
            ("precision", "recall"),
            "precision and recall per rule",
        )
    )
    out.append(_table(EVAL_HEADER, _evaluation_rows(by_rule)))

    lead = report.get("lead_time_distribution") or {}
    out.append(_h2(anchor + "lead-time", f"{prefix}Lead time: first alert to outcome"))
    bins: list[str] = next((d["bins"] for d in lead.values()), [])
    out.append(
        grouped_columns(bins, {t: d["counts"] for t, d in lead.items()}, "lead-time distribution")
    )

    models = report.get("models") or {}
    out.append(_h2(anchor + "models", f"{prefix}Models"))
    learning = report.get("learning") or {}
    if learning.get("enabled"):
        out.append(
            f'<p class="note">The models learned during the replay from the outcomes in the input '
            f"(delayed labels, as the live learner): {_fmt(learning.get('snapshots_installed'))} "
            f"snapshots installed, one every {_fmt(learning.get('publish_every_seconds'))} s of "
            "event time.</p>"
        )
    elif learning.get("note"):
        out.append(f'<p class="note">{_e(learning["note"])}.</p>')
    days = sorted({d["day"] for m in models.values() for d in m.get("roc_auc_by_day") or []})
    series: dict[str, list[float | None]] = {}
    for name, m in models.items():
        by_day = {d["day"]: d["roc_auc"] for d in m.get("roc_auc_by_day") or []}
        series[name] = [by_day.get(d) for d in days]
    out.append(f"<h3>{prefix}ROC AUC over time (per day of the examples)</h3>")
    out.append(line_chart(days, series, "model ROC AUC over time"))
    out.append(
        _table(
            [
                "model",
                "outcome",
                "ROC AUC",
                "log loss",
                "examples",
                "positives",
                "censored",
                "cold share",
                "learned",
                "note",
            ],
            [
                [
                    name,
                    m.get("label") or "–",
                    _fmt(m.get("roc_auc")),
                    _fmt(m.get("log_loss")),
                    _fmt(m.get("examples")),
                    _fmt(m.get("positives")),
                    _fmt(m.get("censored")),
                    _pct(m.get("cold_share")),
                    _fmt(m.get("learned_examples")),
                    m.get("note", ""),
                ]
                for name, m in models.items()
            ],
        )
    )
    return out


def _comparison(report: Mapping[str, Any]) -> list[str]:
    other = report.get("challenger")
    comp = report.get("comparison")
    if not other or not comp:
        return []
    champ_name, chall_name = report.get("variant", "champion"), other.get("variant", "challenger")
    out = [_h2("comparison", f"Champion and challenger: {_e(champ_name)} vs {_e(chall_name)}")]

    def metric(doc: Mapping[str, Any], *path: str) -> Any:
        cur: Any = doc
        for p in path:
            cur = (cur or {}).get(p)
        return cur

    rows = []
    for title, path in (
        ("config version", ("config_version",)),
        ("alerts", ("alerts", "total")),
        ("alerted customers", ("alerts", "customers")),
        ("actions", ("actions", "total")),
        ("suppressed", ("suppressed", "total")),
    ):
        rows.append([title, _fmt(metric(report, *path)), _fmt(metric(other, *path))])
    for t in sorted(set(report.get("evaluation") or {}) | set(other.get("evaluation") or {})):
        for key, fmt in (
            ("precision", _pct),
            ("recall", _pct),
            ("median_lead_hours", _fmt),
        ):
            rows.append(
                [
                    f"{t} {key.replace('_', ' ')}",
                    fmt(metric(report, "evaluation", t, key)),
                    fmt(metric(other, "evaluation", t, key)),
                ]
            )
    out.append(_table(["", champ_name, chall_name], rows))
    rules = sorted(
        set((report.get("alerts") or {}).get("by_rule") or {})
        | set((other.get("alerts") or {}).get("by_rule") or {})
    )
    out.append("<h3>Alerts per rule</h3>")
    out.append(
        _table(
            ["rule", champ_name, chall_name, f"only {champ_name}", f"only {chall_name}"],
            [
                [
                    r,
                    _fmt(metric(report, "alerts", "by_rule", r) or 0),
                    _fmt(metric(other, "alerts", "by_rule", r) or 0),
                    _fmt(comp["alerts_only_champion"]["by_rule"].get(r, 0)),
                    _fmt(comp["alerts_only_challenger"]["by_rule"].get(r, 0)),
                ]
                for r in rules
            ],
        )
    )
    out.append(f'<p class="note">{_e(comp.get("identity", ""))}</p>')
    for key, who in (
        ("alerts_only_champion", champ_name),
        ("alerts_only_challenger", chall_name),
    ):
        part = comp[key]
        out.append(f"<h3>Alerts only {_e(who)} raised ({_fmt(part['total'])})</h3>")
        listed = part["first"][:50]
        if listed:
            out.append(
                _table(
                    ["event time", "customer", "rule", "type", "alert id"],
                    [
                        [a["event_time"], a["customer_id"], a["rule_id"], a["type"], a["alert_id"]]
                        for a in listed
                    ],
                    left=5,
                )
            )
            if part["total"] > len(listed):
                out.append(
                    f'<p class="note">{_fmt(part["total"] - len(listed))} more in report.json '
                    "(first 200) and in the two decisions.jsonl files.</p>"
                )
    out.append(
        _table(
            ["actions", "total"],
            [
                ["in both", _fmt(comp["actions_both"])],
                [f"only {champ_name}", _fmt(comp["actions_only_champion"]["total"])],
                [f"only {chall_name}", _fmt(comp["actions_only_challenger"]["total"])],
            ],
        )
    )
    out.append(_h2("challenger", f"Challenger ({_e(chall_name)}) in detail"))
    out.extend(_variant_sections(other, prefix=f"{_e(chall_name)}: ", anchor="challenger-"))
    return out


def render_html(report: Mapping[str, Any]) -> str:
    """The whole page for a report document (``report.json``'s content)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Vigil replay report {_e(report.get('config_version', ''))}</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Vigil replay report</h1>",
    ]
    data = report.get("data") or {}
    inputs = ", ".join(str(i.get("source")) for i in report.get("inputs") or [])
    parts.append(
        f'<p class="meta">variant <b>{_e(report.get("variant", "champion"))}</b> · config '
        f"<code>{_e(report.get('config_version', ''))}</code> · generated "
        f"{_e(report.get('generated_at', ''))} · input {_e(inputs or '–')} · event time "
        f"{_e(data.get('first_event_time') or '–')} to {_e(data.get('last_event_time') or '–')}"
        "</p>"
    )
    parts.append(_cards(report))
    toc = [
        ("alerts", "alerts"),
        ("actions", "actions"),
        ("suppressions", "suppressions"),
        ("evaluation", "evaluation"),
        ("lead-time", "lead time"),
        ("models", "models"),
    ]
    if report.get("challenger"):
        toc += [("comparison", "champion vs challenger"), ("challenger", "challenger")]
    toc += [("invalid", "invalid input"), ("definitions", "definitions")]
    parts.append(
        '<p class="meta">' + " · ".join(f'<a href="#{a}">{t}</a>' for a, t in toc) + "</p>"
    )
    config = report.get("config") or {}
    if config:
        parts.append(
            _table(
                ["configuration", ""],
                [
                    ["origin", config.get("origin", "")],
                    ["rules", f"{config.get('rules_dir', '')} ({config.get('ruleset_version')})"],
                    [
                        "catalog",
                        f"{config.get('actions_catalog', '')} ({config.get('catalog_version')})",
                    ],
                    [
                        "models",
                        ", ".join(f"{k} {v}" for k, v in (config.get("models") or {}).items()),
                    ],
                ],
                left=2,
            )
        )
    parts.extend(_variant_sections(report))
    parts.extend(_comparison(report))

    invalid = report.get("invalid") or {}
    parts.append(_h2("invalid", "Invalid input"))
    if invalid.get("total"):
        parts.append(
            f'<p class="note">{_fmt(invalid["total"])} records could not be decided; the first '
            f"{_fmt(invalid.get('listed', 0))} are listed.</p>"
        )
        parts.append(
            _table(
                ["reason", "records"],
                [[k, _fmt(v)] for k, v in (invalid.get("by_reason") or {}).items()],
            )
        )
        parts.append(
            _table(
                ["source", "line / offset", "reason", "message"],
                [
                    [
                        i.get("source"),
                        i.get("line", f"{i.get('partition')}:{i.get('offset')}"),
                        i.get("reason"),
                        i.get("message"),
                    ]
                    for i in invalid.get("first") or []
                ],
                left=4,
            )
        )
    else:
        parts.append('<p class="note">Every record was a valid event.</p>')

    definitions = report.get("definitions") or {}
    if definitions:
        parts.append(_h2("definitions", "Definitions") + "<dl>")
        for k, v in definitions.items():
            parts.append(f"<dt>{_e(k.replace('_', ' '))}</dt><dd>{_e(v)}</dd>")
        parts.append("</dl>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
