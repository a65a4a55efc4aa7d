"""Reason templates: ``"AUM fell {aum_drop_from_peak_30d_pct:.0f}% from {aum_peak_30d:,.0f}"``.

Only plain names and a small set of number formats are allowed: no attribute or index access
(``{x.__class__}`` is refused), no conversions (``{x!r}``), no nested fields, so a template can
never reach into Python objects. A number format on a string name is refused at load; a missing
value renders as ``n/a``.

>>> t = compile_template("fell {pct:.0f}% to {aum:,.0f} ({tier})",
...                      {"pct": "number", "aum": "number", "tier": "string"})
>>> t.render({"pct": 31.6, "aum": 68400.0, "tier": "basic"})
'fell 32% to 68,400 (basic)'
>>> t.render({"pct": None, "aum": 1.0, "tier": "basic"})
'fell n/a% to 1 (basic)'
>>> compile_template("{tier:.0f}", {"tier": "string"})
Traceback (most recent call last):
...
rules.templates.TemplateError: reason template: {tier:.0f} formats a number, but tier is a string
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_SPEC = re.compile(r"^,?(\.\d{1,2})?[fd%]?$")
MAX_RENDERED_VALUE = 200


class TemplateError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Template:
    source: str
    parts: tuple[tuple[str, str | None, str], ...]  # (literal, name, spec)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(name for _, name, _ in self.parts if name is not None)

    def render(self, env: Mapping[str, Any]) -> str:
        out = []
        for literal, name, spec in self.parts:
            out.append(literal)
            if name is not None:
                out.append(_render_value(env.get(name), spec))
        return "".join(out)


def _render_value(value: Any, spec: str) -> str:
    if value is None:
        return "n/a"
    if spec and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return str(value)[:MAX_RENDERED_VALUE]
    try:
        return format(value, spec)[:MAX_RENDERED_VALUE]
    except (TypeError, ValueError, OverflowError):
        return str(value)[:MAX_RENDERED_VALUE]


def compile_template(text: str, known: Mapping[str, str] | set[str] | frozenset[str]) -> Template:
    """Check ``text`` against the known names (and their types, when given) and compile it."""
    parts: list[tuple[str, str | None, str]] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"reason template: {exc}") from None
    for literal, name, spec, conversion in parsed:
        if name is None:
            parts.append((literal, None, ""))
            continue
        if not name.isidentifier() or name.startswith("_"):
            raise TemplateError(f"reason template: {{{name}}} is not a plain name")
        if name not in known:
            raise TemplateError(f"reason template: unknown name {name!r}")
        if conversion or not _SPEC.match(spec or ""):
            raise TemplateError(f"reason template: format {spec!r} of {name!r} is not allowed")
        kind = known.get(name) if isinstance(known, Mapping) else None
        if spec and kind in ("string", "bool"):
            raise TemplateError(
                f"reason template: {{{name}:{spec}}} formats a number, but {name} is a {kind}"
            )
        parts.append((literal, name, spec or ""))
    return Template(text, tuple(parts))
