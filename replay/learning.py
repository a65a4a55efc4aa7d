"""Models learning during a replay, as they would live.

Live, every worker scores with the models it has, and one learner (``online_models.learner``,
fed by the ``decisions`` topic: decision records and the records of outcome events) joins each
late label to the feature snapshot taken at decision time, learns, and publishes model snapshots
that the workers install. Replay does the same in-process: after every batch, each variant's
learner observes the batch's decision records in the order they were decided, and every
``publish_every`` seconds of *event time* its models are installed into that variant's pipeline
scorer — so later decisions are scored by models that learned only from labels that had arrived
by then (no leakage), and the run stays deterministic.

Live, snapshots are published on the wall clock (``models.snapshot_seconds``); a replay of a
month cannot follow that cadence, so it publishes by event time (default: every hour of event
time). That is the one difference, and it only shifts when a model update starts to serve.

The hand-over: the first snapshot is installed as the workers install theirs (the learner's
stamped pickle, checked and unpickled). After that, the pipeline's scorer *follows* the learner:
it learns the examples the learner learned since the previous snapshot, in the same order
(``ModelScorer.follow``), and ends with the same models: the learning of the models it follows
depends only on the model and the example. Pickling the anomaly model's ten trees and
unpickling them every hour cost as much as all of the learner's other work; following costs a
second ``learn_one`` per example. Only models that ``learns_deterministically`` are followed;
others (an ARF challenger, whose estimators hold unseeded random generators) are copied at every
snapshot. ``ReplayLearning(..., copy_every_time=True)`` installs a pickled copy of every model
every time, the reference the tests hold the following to.

The learner is optional: when ``online_models.learner`` is not available, ``learning_for``
returns None and the report says the models did not learn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.config import Settings
from engine.errors import ConfigError
from engine.pipeline import BatchResult, DecisionPipeline
from online_models.scorer import OFFER_SNAPSHOT, ModelScorer, learns_deterministically

LEARNER_STATE = "learner"  # the learner's own state: not a model a scorer installs


class ReplayLearning:
    """One variant's learner; call it after every batch of that variant."""

    def __init__(self, learner: Any, publish_every: float, copy_every_time: bool = False) -> None:
        self.learner = learner
        self.publish_every = publish_every
        # True: install a pickled copy of every model at every snapshot (the reference the
        # tests hold the following to).
        self.copy_every_time = copy_every_time
        self.snapshots = 0
        self._next: float | None = None
        self._follower: ModelScorer | None = None  # the scorer that follows, once installed
        self._followed: frozenset[str] = frozenset()  # the models it follows

    def __call__(self, pipeline: DecisionPipeline, result: BatchResult) -> None:
        self.learner.observe([d.record for d in result.decisions])
        seen = self.learner.max_ts
        if seen is None:
            return
        if self._next is None:
            self._next = seen + self.publish_every
        elif seen >= self._next:
            self.publish(pipeline)
            while self._next <= seen:
                self._next += self.publish_every

    def publish(self, pipeline: DecisionPipeline) -> None:
        """Serve every model the learner has in the pipeline's scorer (a new snapshot)."""
        self.snapshots += 1
        names = [n for n in self.learner.snapshot_names() if n != LEARNER_STATE]
        scorer = pipeline.scorer
        following = scorer is self._follower and not self.copy_every_time
        if following:
            learned = [ex for ex in self.learner.take_learned() if ex.name in self._followed]
            scorer.follow(learned, self.snapshots, self.learner.config.seed)
        for name in names:
            if not following or name not in self._followed:
                scorer.install(name, self.snapshots, self.learner.export(name))
        # From a first copy on, the scorer follows the models that learn deterministically (the
        # others, e.g. an ARF challenger, are copied every time), if it serves exactly the
        # learner's models (follow stamps every model of the scorer with the snapshot number).
        serves_the_same = set(scorer.models) | {OFFER_SNAPSHOT} == set(names) | {OFFER_SNAPSHOT}
        if not following and not self.copy_every_time and serves_the_same:
            self._followed = self._deterministic(names)
            self._follower = scorer
            self.learner.keep_learned()
        for name in names:
            self.learner.published(name, self.snapshots)

    def _deterministic(self, names: list[str]) -> frozenset[str]:
        scorer = self.learner.scorer()
        out = {n for n, live in scorer.models.items() if learns_deterministically(live.model)}
        spec = scorer.offer_spec
        if spec is not None and learns_deterministically(spec.build(self.learner.config.seed)):
            out.add(OFFER_SNAPSHOT)
        return frozenset(out & set(names))

    def health(self) -> dict[str, Any]:
        doc = dict(self.learner.health())
        doc["snapshots_installed"] = self.snapshots
        doc["publish_every_seconds"] = self.publish_every
        return doc


def learning_for(settings: Settings, publish_every: float = 3600.0) -> ReplayLearning | None:
    """A learner configured like the live one, or None when the models cannot learn yet."""
    try:
        from online_models.catalog import build_catalog
        from online_models.learner import Learner, LearnerConfig
        from online_models.settings import model_settings
    except ImportError:
        return None
    try:
        ms = model_settings(settings)
        config = LearnerConfig.from_settings(ms, settings.model_seed)
        # The catalog the workers score with (engine.wiring.default_scorer), as the live
        # learner builds it: with the configured challenger and min_examples.
        learner = Learner(config, build_catalog(ms.challenger, ms.min_examples))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ConfigError(f"the models' learner cannot start: {exc}") from None
    return ReplayLearning(learner, publish_every)


LearningFactory = Callable[[Settings], ReplayLearning | None]
