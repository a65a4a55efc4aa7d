"""Safe hot reload: a changed rule folder replaces the running rule set only if it loads whole.

The worker calls ``check()`` on a timer (``settings.worker.rules_reload_seconds``); the pipeline
reads ``holder()`` once per batch, so a batch is decided under one rule set and every alert and
decision carries that set's version. A folder that fails to load (a broken file, a file deleted
so that nothing is left, an unknown feature...) is refused: the error is logged, counted in
``vigil_rule_reload_failures_total`` and kept in ``last_error``, and the old set keeps serving.
It is not retried until the files change again. Writers should replace files atomically (write
a temporary file whose name starts with ``.``, then rename it); a half-written file is refused
and picked up when complete.

>>> from pathlib import Path
>>> holder = RuleSetHolder(Path("rules/default"), ["churn_risk", "asset_drop"])
>>> holder.check()  # nothing changed since load
False
>>> holder() is holder.current
True
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from engine.errors import RuleError
from rules.evaluator import RuleSet
from rules.loader import load_rules, rule_files

log = logging.getLogger(__name__)

Stamp = tuple[tuple[str, int, int, int], ...]


class RuleSetHolder:
    """Holds the running rule set; ``check()`` reloads when the files changed."""

    def __init__(self, folder: Path, model_names: Iterable[str]) -> None:
        self.folder = folder
        self.model_names = tuple(model_names)
        self._stamp = self._fingerprint()
        self.current: RuleSet = load_rules(folder, self.model_names)
        self.failures = 0
        self.reloads = 0
        self.last_error: str | None = None

    def __call__(self) -> RuleSet:
        return self.current

    @property
    def version(self) -> str:
        return self.current.version

    def _fingerprint(self) -> Stamp:
        """Name, modification time, size and inode of every rule file (cheap: ``stat`` only)."""
        try:
            out = []
            for p in rule_files(self.folder):
                st = os.stat(p)
                out.append((p.name, st.st_mtime_ns, st.st_size, st.st_ino))
            return tuple(out)
        except (OSError, RuleError):
            return ()

    def check(self) -> bool:
        """Reload if the files changed. True when a new rule set now serves.

        Never raises: a failed load is refused, logged and counted.
        """
        stamp = self._fingerprint()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            candidate = load_rules(self.folder, self.model_names)
        except Exception as exc:  # RuleError, or anything unforeseen: never stop the worker
            self._refuse(exc)
            return False
        self.last_error = None
        if candidate.version == self.current.version:
            return False
        log.info(
            "rules reloaded from %s: version %s -> %s (%d rules)",
            self.folder,
            self.current.version,
            candidate.version,
            len(candidate.rules),
        )
        self.current = candidate
        self.reloads += 1
        return True

    def _refuse(self, exc: Exception) -> None:
        from engine import metrics

        self.failures += 1
        self.last_error = str(exc) if isinstance(exc, RuleError) else f"{type(exc).__name__}: {exc}"
        metrics.RULE_RELOAD_FAILURES.inc()
        log.error(
            "rule reload refused, version %s keeps serving: %s",
            self.current.version,
            self.last_error,
        )
