"""Safe hot reload: a changed rule folder replaces the running rule set only if it loads whole.

>>> from pathlib import Path
>>> holder = RuleSetHolder(Path("rules/default"), ["churn_risk", "asset_drop"])
>>> holder.check()  # nothing changed since load
False
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from engine.errors import RuleError
from rules.evaluator import RuleSet
from rules.loader import load_rules, rule_files

log = logging.getLogger(__name__)


class RuleSetHolder:
    """Holds the running rule set; ``check()`` reloads when the files changed."""

    def __init__(self, folder: Path, model_names: Iterable[str]) -> None:
        self.folder = folder
        self.model_names = tuple(model_names)
        self.current: RuleSet = load_rules(folder, self.model_names)
        self._stamp = self._fingerprint()
        self.failures = 0
        self.last_error: str | None = None

    def __call__(self) -> RuleSet:
        return self.current

    def _fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        try:
            return tuple(
                (p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in rule_files(self.folder)
            )
        except (OSError, RuleError):
            return ()

    def check(self) -> bool:
        """Reload if the files changed. True when a new rule set now serves."""
        stamp = self._fingerprint()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            candidate = load_rules(self.folder, self.model_names)
        except RuleError as exc:
            from engine import metrics

            self.failures += 1
            self.last_error = str(exc)
            metrics.RULE_RELOAD_FAILURES.inc()
            log.error(
                "rule reload refused, version %s keeps serving: %s", self.current.version, exc
            )
            return False
        if candidate.version == self.current.version:
            return False
        log.info("rules reloaded: version %s -> %s", self.current.version, candidate.version)
        self.current = candidate
        self.last_error = None
        return True
