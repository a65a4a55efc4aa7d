"""Comparing two models' learned state exactly (replay's scorer follows its learner)."""

from __future__ import annotations

import random
from typing import Any


def state_differences(a: Any, b: Any, path: str = "model") -> list[str]:
    """Where two model objects differ: types, dict keys and their order, lengths, values
    (exactly; NaN equals NaN), through attributes, dicts, lists and tuples. Pickles of equal
    models can still differ (which strings are shared objects), so the state is compared."""
    if type(a) is not type(b):
        return [f"{path}: {type(a).__name__} vs {type(b).__name__}"]
    if isinstance(a, random.Random):
        a, b = a.getstate(), b.getstate()
    if isinstance(a, dict):
        if list(a) != list(b):
            return [f"{path}: keys {list(a)} vs {list(b)}"]
        return [d for k in a for d in state_differences(a[k], b[k], f"{path}[{k!r}]")]
    if isinstance(a, list | tuple):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} vs {len(b)}"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in state_differences(x, y, f"{path}[{i}]")
        ]
    if hasattr(a, "__dict__") or hasattr(a, "__slots__"):
        names = [*getattr(a, "__dict__", {})] + [
            n for c in type(a).__mro__ for n in getattr(c, "__slots__", ()) if hasattr(a, n)
        ]
        return [
            d for n in names for d in state_differences(getattr(a, n), getattr(b, n), f"{path}.{n}")
        ]
    if a != b and not (a != a and b != b):
        return [f"{path}: {a!r} vs {b!r}"]
    return []
