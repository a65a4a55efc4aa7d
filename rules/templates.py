"""Reason templates: ``"AUM fell {aum_drop_from_peak_30d_pct:.0f}% from {aum_peak_30d:,.0f}"``.

Only plain names and a small set of number formats are allowed: no attribute or index access
(``{x.__class__}`` is refused), so a template can never reach into Python objects.

>>> t = compile_template("fell {pct:.0f}% to {aum:,.0f} ({tier})", {"pct", "aum", "tier"})
>>> t.render({"pct": 31.6, "aum": 68400.0, "tier": "basic"})
'fell 32% to 68,400 (basic)'
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_SPEC = re.compile(r"^,?(\.\d{1,2})?[fd%]?$")


class TemplateError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Template:
    parts: tuple[tuple[str, str | None, str], ...]  # (literal, name, spec)

    def render(self, env: Mapping[str, Any]) -> str:
        out = []
        for literal, name, spec in self.parts:
            out.append(literal)
            if name is not None:
                value = env.get(name)
                try:
                    out.append(format(value, spec) if value is not None else "n/a")
                except (TypeError, ValueError):
                    out.append(str(value))
        return "".join(out)


def compile_template(text: str, known: Mapping[str, Any] | set[str]) -> Template:
    parts: list[tuple[str, str | None, str]] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"reason template: {exc}") from None
    for literal, name, spec, conversion in parsed:
        if name is None:
            parts.append((literal, None, ""))
            continue
        if not name.isidentifier():
            raise TemplateError(f"reason template: {{{name}}} is not a plain name")
        if name not in known:
            raise TemplateError(f"reason template: unknown name {name!r}")
        if conversion or not _SPEC.match(spec or ""):
            raise TemplateError(f"reason template: format {spec!r} of {name!r} is not allowed")
        parts.append((literal, name, spec or ""))
    return Template(tuple(parts))
