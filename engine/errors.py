"""The one exception tree of Vigil, and the one failure policy.

- Invalid *input* is never an exception that escapes a stage: ``engine.events.parse_event``
  returns an ``InvalidEvent`` and the pipeline writes it to the dead-letter topic with its reason.
- Invalid *configuration* (rules, catalogs, feature definitions, settings) raises ``ConfigError``
  at load time, naming the file, the item and the reason; nothing partial is ever loaded.
- *Infrastructure* failures (Redis, Kafka) raise ``InfrastructureError``: the batch is retried
  and its offsets are not committed, so nothing is lost.
"""

from __future__ import annotations


class VigilError(Exception):
    """Base of every error Vigil raises on purpose."""


class ConfigError(VigilError):
    """A rule file, action catalog, feature definition or setting is wrong. Raised at load."""


class RuleError(ConfigError):
    """A rule cannot be loaded: names the file, the rule and the reason."""

    def __init__(self, file: str, rule: str | None, reason: str, line: int | None = None) -> None:
        self.file = file
        self.rule = rule
        self.reason = reason
        self.line = line
        where = f"{file}:{line}" if line is not None else file
        what = f" rule {rule!r}:" if rule else ""
        super().__init__(f"{where}:{what} {reason}")


class CatalogError(ConfigError):
    """An action catalog entry cannot be loaded."""


class InfrastructureError(VigilError):
    """Kafka or Redis failed; the caller retries and does not commit offsets."""


# replay.sources.SourceError(VigilError): an input of `vigil replay` is missing or unreadable as a
# whole (a single bad line is counted, never raised).


class SnapshotError(VigilError):
    """A model snapshot is corrupt or was made by another River version or feature schema."""
