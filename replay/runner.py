"""Replay: the live ``DecisionPipeline`` over history, with the in-memory twins.

Each configuration to replay (a *variant*: the champion, and with ``--compare`` a challenger) gets
its own pipeline, built by ``engine.wiring.build_pipeline`` exactly as the worker builds it, but
with ``features.memory_store.MemoryStateStore`` for Redis, a ``ReportSink`` for Kafka and a
``FixedClock`` driven by event time. Every batch of input records is handed to every variant in
turn, so the input is read once.

The clock: before each batch, every pipeline's clock is set to the latest event time in the batch
(never going back). Decisions therefore carry a ``decision_time`` that depends on the input and the
batch size only, and the pipeline's "timestamp in the future" check compares an event with the
history around it, not with today: it still refuses an event stamped more than
``worker.max_future_seconds`` after the latest plausible event of its batch. (An event stamped
after the real time of the run plus that allowance never moves the clock.)

Determinism: the same input, configuration and batch size give byte-identical ``decisions.jsonl``.
"""

from __future__ import annotations

import gc
import hashlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
import yaml
from pydantic import ValidationError

from engine.clock import FixedClock
from engine.config import Settings
from engine.dead_letter import InputRecord
from engine.errors import ConfigError
from engine.metrics import NoMetrics
from engine.pipeline import BatchResult, DecisionPipeline
from engine.wiring import build_pipeline, store_limits
from features.memory_store import MemoryStateStore
from online_models.catalog import model_names
from replay.evaluation import DEFAULT_LABELS
from replay.html import render_html
from replay.learning import ReplayLearning, learning_for
from replay.progress import Progress
from replay.report import OUTPUT_FILES, ReportSink, compare, utc_now_iso, write_json
from replay.sources import Source, SourceItem, merged
from rules.reload import RuleSetHolder

DEFAULT_BATCH = 1000
VARIANT_KEYS = frozenset({"name", "rules", "catalog", "settings"})


# --- configurations -------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One configuration to replay: a name and the full ``Settings`` (rules and catalog are the
    settings' ``rules_dir`` and ``actions_catalog``)."""

    name: str
    settings: Settings
    origin: str = "environment"


def read_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML (or JSON) file holding a mapping; ``ConfigError`` naming the file otherwise."""
    if not path.is_file():
        raise ConfigError(f"{what} {path}: no such file")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path}: not valid YAML or JSON: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{what} {path}: expected a mapping, got {type(doc).__name__}")
    return doc


def _deep_merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _resolve(value: Any, relative_to: Path | None) -> Any:
    if relative_to is None or not isinstance(value, str | Path):
        return value
    p = Path(value).expanduser()
    return p if p.is_absolute() else (relative_to / p)


def with_overrides(
    base: Settings, overrides: Mapping[str, Any], origin: str, relative_to: Path | None = None
) -> Settings:
    """``base`` with ``overrides`` merged in (nested groups merge), validated as a whole.

    ``rules_dir`` and ``actions_catalog`` given as relative paths are taken relative to
    ``relative_to`` (the directory of the file that holds them).

    >>> s = with_overrides(Settings(), {"policy": {"max_contacts_7d": 5}}, "test")
    >>> s.policy.max_contacts_7d, s.policy.quiet_hours_start
    (5, 21)
    """
    fixed = dict(overrides)
    for key in ("rules_dir", "actions_catalog"):
        if key in fixed:
            fixed[key] = _resolve(fixed[key], relative_to)
    try:
        return Settings.model_validate(_deep_merge(base.model_dump(), fixed))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(settings)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{origin}: invalid setting {where}: {first['msg']}{more}") from None


def champion_variant(
    base: Settings,
    *,
    config: Path | None = None,
    rules: Path | None = None,
    catalog: Path | None = None,
) -> Variant:
    """The main configuration: the environment's settings, then ``--config`` (a mapping of
    Settings overrides), then ``--rules`` and ``--catalog``."""
    settings = base
    origin = ["environment"]
    if config is not None:
        settings = with_overrides(
            settings, read_mapping(config, "config file"), str(config), config.parent
        )
        origin.append(str(config))
    direct: dict[str, Any] = {}
    if rules is not None:
        direct["rules_dir"] = rules
        origin.append(f"rules {rules}")
    if catalog is not None:
        direct["actions_catalog"] = catalog
        origin.append(f"catalog {catalog}")
    if direct:
        settings = with_overrides(settings, direct, "command line")
    return Variant("champion", settings, " + ".join(origin))


def challenger_variant(champion: Variant, path: Path) -> Variant:
    """A ``--compare`` file: a mapping with optional ``name``, ``rules`` (folder), ``catalog``
    (file) and ``settings`` (Settings overrides); everything else is the champion's."""
    doc = read_mapping(path, "compare file")
    unknown = sorted(set(doc) - VARIANT_KEYS)
    if unknown:
        raise ConfigError(
            f"compare file {path}: unknown key(s) {unknown}; "
            f"expected {sorted(VARIANT_KEYS)} (Settings overrides go under 'settings')"
        )
    overrides = doc.get("settings") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"compare file {path}: 'settings' must be a mapping")
    overrides = dict(overrides)
    if doc.get("rules") is not None:
        overrides["rules_dir"] = doc["rules"]
    if doc.get("catalog") is not None:
        overrides["actions_catalog"] = doc["catalog"]
    settings = with_overrides(champion.settings, overrides, f"compare file {path}", path.parent)
    name = str(doc.get("name") or path.stem)
    if name == champion.name:
        name = f"{name} (challenger)"
    return Variant(name, settings, str(path))


# --- one pipeline per variant ---------------------------------------------------------------


class VariantRun:
    """A variant's pipeline with its in-memory store, clock and report sink, and its learner
    when ``learn`` (see ``replay.learning``)."""

    def __init__(
        self,
        variant: Variant,
        *,
        line_numbers: bool = True,
        learn: bool = False,
        publish_every: float = 3600.0,
    ) -> None:
        settings = variant.settings
        self.variant = variant
        # Loading the rules and the catalog raises ConfigError now, before any input is read.
        holder = RuleSetHolder(settings.rules_dir, model_names())
        self.sink = ReportSink(line_numbers=line_numbers)
        self.clock = FixedClock(0.0)
        self.store = MemoryStateStore(store_limits(settings))
        self.pipeline: DecisionPipeline
        self.pipeline, self.rules = build_pipeline(
            settings,
            self.sink,
            store=self.store,
            clock=self.clock,
            rules=holder,
            metrics=NoMetrics(),  # a replay's decisions are not the live process's
        )
        self.seconds = 0.0
        self._files: dict[str, IO[bytes]] = {}
        self.output_dir: Path | None = None
        w = settings.worker
        self.max_future = w.max_future_seconds
        self.learning: ReplayLearning | None = (
            learning_for(settings, publish_every) if learn else None
        )
        self.learning_requested = learn
        # Taken before anything runs: learning changes the models' snapshot numbers, not the
        # configuration.
        self.config_version, self.config = self._configuration()

    def open(self, directory: Path) -> None:
        """Write this run's outputs into ``directory`` (decisions.jsonl, alerts.jsonl, ...)."""
        directory.mkdir(parents=True, exist_ok=True)
        self._files = {
            role: (directory / name).open("wb", buffering=1 << 20)
            for role, name in OUTPUT_FILES.items()
        }
        self.sink.attach(self._files)
        self.output_dir = directory

    def close(self) -> None:
        self.sink.detach()
        for fh in self._files.values():
            fh.close()
        self._files = {}

    def _configuration(self) -> tuple[str, dict[str, Any]]:
        """The configuration's parts that shape decisions, and their short hash."""
        ctx = self.pipeline.context()
        s = self.variant.settings
        w = s.worker
        parts: dict[str, Any] = {
            "ruleset_version": ctx.rules.version,
            "rules_dir": str(s.rules_dir),
            "catalog_version": ctx.catalog.version,
            "actions_catalog": str(s.actions_catalog),
            "models": self.pipeline.scorer.versions(),
            "model_seed": s.model_seed,
            "policy": s.policy.model_dump(mode="json"),
            "worker": {
                "max_event_bytes": w.max_event_bytes,
                "max_future_seconds": w.max_future_seconds,
                "dedup_horizon_seconds": w.dedup_horizon_seconds,
                "allowed_lateness_seconds": w.allowed_lateness_seconds,
            },
        }
        hashed = {k: v for k, v in parts.items() if k not in ("rules_dir", "actions_catalog")}
        digest = hashlib.sha256(orjson.dumps(hashed, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return digest[:12], parts

    def rule_types(self) -> dict[str, str]:
        return {r.id: r.spec.alert_type for r in self.pipeline.context().rules.rules}

    def learned(self) -> dict[str, int]:
        return {name: m.examples for name, m in self.pipeline.scorer.models.items()}

    def learning_report(self) -> dict[str, Any]:
        if self.learning is not None:
            return {"enabled": True, **self.learning.health()}
        note = (
            "the models' learner (online_models.learner) is not available: models score with "
            "what they had at start-up"
            if self.learning_requested
            else "learning was turned off (--no-learn): models score with their start-up state"
        )
        return {"enabled": False, "note": note}


AfterBatch = Callable[[VariantRun, BatchResult], None]


@dataclass
class RunStats:
    events: int = 0
    batches: int = 0
    rejected: int = 0
    by_source: dict[tuple[str, int], int] = field(default_factory=dict)
    wall_seconds: float = 0.0


async def drive(
    stream: Iterable[SourceItem],
    runs: Sequence[VariantRun],
    *,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[int], None] | None = None,
    after_batch: AfterBatch | None = None,
    reference_now: float | None = None,
) -> RunStats:
    """Feed ``stream`` (an iterable of ``SourceItem``) to every run, batch by batch."""
    stats = RunStats()
    now = time.time() if reference_now is None else reference_now
    guards = [now + run.max_future for run in runs]
    clocks = [0.0] * len(runs)
    by_source: dict[tuple[str, int], int] = {}
    batch: list[InputRecord] = []
    times: list[float] = []

    async def flush() -> None:
        if not batch:
            return
        top = max(times) if times else None
        for i, run in enumerate(runs):
            at = top
            if at is not None and at > guards[i]:
                plausible = [t for t in times if t <= guards[i]]
                at = max(plausible) if plausible else None
            if at is not None and at > clocks[i]:
                clocks[i] = at
            run.clock.set(clocks[i])
            started = time.perf_counter()
            result = await run.pipeline.process(batch)
            if run.learning is not None:
                run.learning(run.pipeline, result)
            run.seconds += time.perf_counter() - started
            if after_batch is not None:
                after_batch(run, result)
        stats.batches += 1
        batch.clear()
        times.clear()
        if progress is not None:
            progress(stats.events)

    for item in stream:
        stats.events += 1
        where = (item.source, item.partition)
        by_source[where] = by_source.get(where, 0) + 1
        if item.rejected is not None:
            stats.rejected += 1
            for run in runs:
                run.sink.reject(item)
            continue
        batch.append(
            InputRecord(item.value, item.source, item.partition, item.offset, item.kafka_timestamp)
        )
        if item.ts is not None:
            times.append(item.ts)
        if len(batch) >= batch_size:
            await flush()
    await flush()
    stats.by_source = by_source
    return stats


class GcTuning:
    """The cyclic garbage collector while replaying: start-up objects (rules, catalog, models)
    leave its generations, young collections run every 50,000 allocations instead of 700, and
    what survives a batch (states, pending labels, the report's tallies) is frozen after it
    (``after_batch``), so no collection scans it again. The replay's objects are acyclic and
    freed by reference counting: a month of 1,000 customers leaves ~100 objects in cycles in
    all, which go back to the collector when the replay ends (``restore``)."""

    def __init__(self) -> None:
        gc.collect()
        gc.freeze()
        self._threshold = gc.get_threshold()
        gc.set_threshold(50_000, 20, 100)

    def after_batch(self) -> None:
        gc.freeze()

    def restore(self) -> None:
        gc.set_threshold(*self._threshold)
        gc.unfreeze()


# --- the whole replay -----------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayOptions:
    report_dir: Path
    horizon_days: float = 30.0
    batch_size: int = DEFAULT_BATCH
    labels: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_LABELS))
    html: bool = True
    reference_now: float | None = None
    # gc.freeze() after start-up and a higher gen-0 threshold while replaying (see bench_replay)
    gc_tuning: bool = True


async def run_replay(
    sources: Sequence[Source],
    runs: Sequence[VariantRun],
    options: ReplayOptions,
    *,
    inputs: Sequence[Mapping[str, Any]] = (),
    progress: Progress | None = None,
    after_batch: AfterBatch | None = None,
) -> dict[str, Any]:
    """Replay ``sources`` through every run and write the report; returns ``report.json``'s
    document. The first run is the champion; a second one is its challenger."""
    out = options.report_dir
    out.mkdir(parents=True, exist_ok=True)
    runs[0].open(out)
    for run in runs[1:]:
        run.open(out / "challenger")

    tuning = GcTuning() if options.gc_tuning else None

    def between_batches(events: int) -> None:
        if tuning is not None:
            tuning.after_batch()
        if progress is not None:
            progress.update(events, sum(s.position() for s in sources))

    started = time.perf_counter()
    try:
        stats = await drive(
            merged(sources),
            runs,
            batch_size=options.batch_size,
            progress=between_batches,
            after_batch=after_batch,
            reference_now=options.reference_now,
        )
    finally:
        if tuning is not None:
            tuning.restore()
        for run in runs:
            run.close()
    stats.wall_seconds = time.perf_counter() - started
    if progress is not None:
        progress.finish(stats.events)

    source_info: list[dict[str, Any]] = []
    for s, given in zip(sources, _pad(inputs, len(sources)), strict=True):
        entry: dict[str, Any] = dict(given) if given else {"source": s.name}
        entry["records"] = stats.by_source.get((s.name, s.partition), 0)
        error = getattr(s, "error", None)
        if error:
            entry["error"] = error
        source_info.append(entry)

    docs = [_document(run, stats, source_info, options) for run in runs]
    report = docs[0]
    if len(runs) > 1:
        report["challenger"] = docs[1]
        report["comparison"] = compare(runs[0].sink, runs[1].sink)
    write_json(out / "report.json", report)
    if options.html:
        (out / "report.html").write_text(render_html(report), encoding="utf-8")
    return report


def _pad(items: Sequence[Mapping[str, Any]], n: int) -> list[Mapping[str, Any] | None]:
    padded: list[Mapping[str, Any] | None] = [*items[:n]]
    return padded + [None] * (n - len(padded))


def _document(
    run: VariantRun, stats: RunStats, inputs: list[dict[str, Any]], options: ReplayOptions
) -> dict[str, Any]:
    version, config = run.config_version, run.config
    learning = run.learning_report()
    body = run.sink.build(
        horizon_days=options.horizon_days,
        labels=options.labels,
        rule_types=run.rule_types(),
        learned=run.learned(),
        learner=(learning.get("models") or {}),
    )
    body["learning"] = {k: v for k, v in learning.items() if k != "models"}
    wall = stats.wall_seconds
    return {
        "report": "vigil replay",
        "variant": run.variant.name,
        "generated_at": utc_now_iso(),
        "events": stats.events,
        "invalid": body.pop("invalid"),
        "wall_seconds": round(wall, 3),
        "throughput_eps": round(stats.events / wall, 1) if wall > 0 else None,
        "pipeline_seconds": round(run.seconds, 3),
        "config_version": version,
        "config": {"origin": run.variant.origin, **config},
        "inputs": inputs,
        "batch_size": options.batch_size,
        "batches": stats.batches,
        "output_files": {
            role: str(run.output_dir / name) if run.output_dir else None
            for role, name in OUTPUT_FILES.items()
        },
        **body,
    }


def spool_directory(report_dir: Path) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".spool-", dir=report_dir))


def remove_spool(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
