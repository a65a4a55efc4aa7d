"""Scoring a whole batch at once: the same numbers as River, a fraction of the time.

Between two ``learn_one`` calls a model does not change, so the events of a batch can be scored
together in numpy from a frozen array copy of the model. Two shapes have a batch form, and it
gives *identical* numbers to River's, not merely close ones:

``MinMaxScaler | HalfSpaceTrees`` (``asset_drop``). River scales the inputs, then walks each of
the ten trees from the root down, adding ``r_mass * 2**depth`` at each node until a node's
``r_mass`` falls under the size limit: ~13 us of Python per event. Here the trees are laid out as
arrays (node ``i`` has children ``2i+1`` and ``2i+2``) and every event walks every tree level by
level.

- scaling is the same IEEE operations, element by element (``(x - lo) / (hi - lo)``, or 0.0
  when the range is nil);
- the walk compares the same values with the same thresholds (``value < threshold`` goes left,
  so a NaN goes right, as in River);
- a tree's score is a sum of integers (masses times powers of two), exact in int64 as it is in
  River's float (far below 2**53), and the final ``1 - score / max_score`` is one float division
  and one subtraction, as River computes it.

``StandardScaler | LogisticRegression`` (``churn_risk``). The scaled inputs are
``(x - mean) / var ** 0.5`` (0.0 when the variance is nil; the square roots are River's own
expression, computed once per input), the logit is summed term by term in the inputs' order
from 0.0 and the intercept added last, as River's weight vector sums it, and the sigmoid is
River's own function on each logit (numpy's ``exp`` may differ from the C library's in the last
bit).

``compile_model`` returns None for any model of another shape (a challenger, another catalog),
one not ready (a missing statistic or weight, trees not built yet), or under a River release
other than ``VERIFIED_RIVER``; callers then score event by event.
``tests/unit/test_batch_scoring.py`` holds both forms to River's answers on random inputs,
trained models and edge cases (values on a threshold, NaN, infinities, the first window, an
untrained model).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from river import anomaly, compose, linear_model, optim, preprocessing
from river.tree.padded import PaddedBranch
from river.utils.math import sigmoid

# Below this many events a batch is scored event by event (numpy's fixed cost per call wins).
MIN_BATCH = 64
# The River release whose arithmetic these forms reproduce (and whose private attributes they
# read); under any other, every model is scored by River itself until this is checked again.
VERIFIED_RIVER = "0.26.1"
RIVER_VERSION = version("river")


class BatchForm(Protocol):
    """A model's batch form: ``score`` answers what River's model answers for each row."""

    def score(self, rows: Sequence[Mapping[str, float]]) -> list[float]: ...


def _matrix(rows: Sequence[Mapping[str, float]], inputs: tuple[str, ...]) -> NDArray[np.float64]:
    """One row per mapping, one column per input (a mapping must hold every input)."""
    x = np.array([[row[name] for name in inputs] for row in rows], dtype=np.float64)
    return x.reshape(len(rows), len(inputs))


@dataclass(frozen=True)
class FirstWindow:
    """A half-space-trees model still in its first window: River answers 0 for every row."""

    def score(self, rows: Sequence[Mapping[str, float]]) -> list[float]:
        return [0.0] * len(rows)


@dataclass(frozen=True, eq=False)
class CompiledLogisticRegression:
    """A frozen copy of a ``StandardScaler | LogisticRegression`` model: P(True) per row."""

    inputs: tuple[str, ...]
    mean: NDArray[np.float64]
    std: NDArray[np.float64]  # var ** 0.5, as River computes it
    scaled: NDArray[np.bool_]  # var != 0: River scales the input, else it reads 0.0
    weights: tuple[float, ...]
    intercept: float

    def score(self, rows: Sequence[Mapping[str, float]]) -> list[float]:
        n = len(rows)
        x = _matrix(rows, self.inputs)
        with np.errstate(all="ignore"):  # inf - inf is NaN, as in River, without a warning
            z = np.zeros_like(x)
            np.divide(x - self.mean, self.std, out=z, where=self.scaled)
            logit = np.zeros(n, dtype=np.float64)
            for j, w in enumerate(self.weights):
                logit = logit + w * z[:, j]
            logit = logit + self.intercept
        return [float(sigmoid(v)) for v in logit.tolist()]


@dataclass(frozen=True, eq=False)
class CompiledHalfSpaceTrees:
    """A frozen copy of a ``MinMaxScaler | HalfSpaceTrees`` model, as arrays."""

    inputs: tuple[str, ...]
    lo: NDArray[np.float64]  # per input: the scaler's min
    span: NDArray[np.float64]  # per input: max - min
    feature: NDArray[np.intp]  # per node of every tree: the input column it splits on
    threshold: NDArray[np.float64]
    r_mass: NDArray[np.int64]
    n_trees: int
    n_nodes: int  # per tree
    height: int
    size_limit: float
    max_score: int
    layout: TreeLayout

    def score(self, rows: Sequence[Mapping[str, float]]) -> list[float]:
        """``score_one`` of every row (a mapping with every input), as River would answer."""
        n = len(rows)
        x = _matrix(rows, self.inputs)
        scaled = np.zeros_like(x)
        with np.errstate(all="ignore"):  # inf - inf is NaN, as in River, without a warning
            np.divide(x - self.lo, self.span, out=scaled, where=self.span != 0)
        at = np.arange(n)[:, None]
        tree_base = np.arange(self.n_trees, dtype=np.intp) * self.n_nodes
        node = np.zeros((n, self.n_trees), dtype=np.intp)
        total = np.zeros((n, self.n_trees), dtype=np.int64)
        walking = np.ones((n, self.n_trees), dtype=bool)
        for depth in range(self.height):
            g = node + tree_base
            r = self.r_mass[g]
            total += np.where(walking, r << depth, 0)
            walking &= r >= self.size_limit
            go_left = scaled[at, self.feature[g]] < self.threshold[g]
            node = 2 * node + 2 - go_left
        total += np.where(walking, self.r_mass[node + tree_base] << self.height, 0)
        scores = 1 - total.sum(axis=1).astype(np.float64) / self.max_score
        return [float(s) for s in scores]


def compile_model(
    model: Any, inputs: Sequence[str], previous: BatchForm | None = None
) -> BatchForm | None:
    """The batch form of ``model`` as it is now, or None when it has none (see the module).

    ``previous``: the form this model had before it learned more, if any. A tree's shape
    (features, thresholds) never changes once built; only the masses and the scaler do, so its
    layout is reused and only those are read again (0.14 ms instead of 1.3 ms).
    """
    if RIVER_VERSION != VERIFIED_RIVER:
        return None
    if not isinstance(model, compose.Pipeline) or len(model.steps) != 2:
        return None
    if model._LEARN_UNSUPERVISED_DURING_PREDICT:  # scoring would learn: River's path only
        return None
    scaler, last = model.steps.values()
    names = tuple(inputs)
    if (
        type(scaler) is preprocessing.StandardScaler
        and type(last) is linear_model.LogisticRegression
    ):
        return _compile_logistic(scaler, last, names)
    if type(scaler) is preprocessing.MinMaxScaler and type(last) is anomaly.HalfSpaceTrees:
        before = previous if isinstance(previous, CompiledHalfSpaceTrees) else None
        return _compile_hst(scaler, last, names, before)
    return None


def _compile_logistic(
    scaler: Any, lr: Any, names: tuple[str, ...]
) -> CompiledLogisticRegression | None:
    if scaler.window_size is not None or not scaler.with_std:
        return None
    if type(lr.loss) is not optim.losses.Log:
        return None
    weights = lr._weights.to_dict()
    means, variances, stds, ws = [], [], [], []
    for name in names:
        m, v, w = scaler.means.get(name), scaler.vars.get(name), weights.get(name)
        if not v:
            # Never learned, or no variance: River reads 0.0 whatever the value (creating the
            # missing statistics at 0.0 as it does), and a term 0.0 adds nothing to the logit.
            means.append(0.0)
            variances.append(0.0)
            stds.append(1.0)
            ws.append(0.0 if w is None else float(w))
            continue
        if m is None or w is None:
            return None
        means.append(m)
        variances.append(v)
        stds.append(v**0.5)
        ws.append(float(w))
    return CompiledLogisticRegression(
        inputs=names,
        mean=np.array(means, dtype=np.float64),
        std=np.array(stds, dtype=np.float64),
        scaled=np.array([bool(v) for v in variances], dtype=np.bool_),
        weights=tuple(ws),
        intercept=float(lr.intercept),
    )


def _compile_hst(
    scaler: Any, hst: Any, names: tuple[str, ...], previous: CompiledHalfSpaceTrees | None
) -> CompiledHalfSpaceTrees | FirstWindow | None:
    if scaler.window_size is not None:
        return None
    if hst._first_window:  # River answers 0 until the first window is complete
        return FirstWindow()
    lows, spans = [], []
    for name in names:
        lo_stat, hi_stat = scaler.min.get(name), scaler.max.get(name)
        if lo_stat is None or hi_stat is None:
            return None  # River would create the statistic while scoring
        lo, hi = lo_stat.get(), hi_stat.get()
        lows.append(lo)
        spans.append(hi - lo)
    layout = previous.layout if previous is not None else None
    if layout is None or not layout.fits(hst, names):
        layout = TreeLayout.of(hst, names)
        if layout is None:
            return None
    r_mass = np.fromiter((n.r_mass for n in layout.nodes), dtype=np.int64, count=len(layout.nodes))
    return CompiledHalfSpaceTrees(
        inputs=names,
        lo=np.array(lows, dtype=np.float64),
        span=np.array(spans, dtype=np.float64),
        feature=layout.feature,
        threshold=layout.threshold,
        r_mass=r_mass,
        n_trees=len(layout.roots),
        n_nodes=layout.n_nodes,
        height=layout.height,
        size_limit=0.1 * hst.window_size,
        max_score=hst.n_trees * hst.window_size * (2 ** (layout.height + 1) - 1),
        layout=layout,
    )


@dataclass(frozen=True, eq=False)
class TreeLayout:
    """The trees' shape as arrays (node ``i``'s children are ``2i+1`` and ``2i+2``), with the
    nodes themselves in the same order to read their masses."""

    roots: tuple[Any, ...]
    inputs: tuple[str, ...]
    height: int
    n_nodes: int  # per tree
    feature: NDArray[np.intp]
    threshold: NDArray[np.float64]
    nodes: tuple[Any, ...]

    def fits(self, hst: Any, inputs: tuple[str, ...]) -> bool:
        """Still the layout of ``hst``'s trees: the same tree objects, inputs and height."""
        trees = hst.trees
        return (
            inputs == self.inputs
            and hst.height == self.height
            and len(trees) == len(self.roots)
            and all(a is b for a, b in zip(trees, self.roots, strict=True))
        )

    @classmethod
    def of(cls, hst: Any, inputs: tuple[str, ...]) -> TreeLayout | None:
        """None unless every tree is complete, of integer masses, and splits on ``inputs``."""
        height = int(hst.height)
        n_nodes = 2 ** (height + 1) - 1
        column = {name: i for i, name in enumerate(inputs)}
        n = len(hst.trees) * n_nodes
        feature = np.zeros(n, dtype=np.intp)
        threshold = np.zeros(n, dtype=np.float64)
        nodes: list[Any] = [None] * n
        for t, root in enumerate(hst.trees):
            stack = [(root, 0, 0)]
            while stack:
                node, i, depth = stack.pop()
                g = t * n_nodes + i
                if type(node.r_mass) is not int:
                    return None
                nodes[g] = node
                if depth == height:
                    if isinstance(node, PaddedBranch):
                        return None
                    continue
                if not isinstance(node, PaddedBranch) or node.feature not in column:
                    return None  # not a complete tree over these inputs
                feature[g] = column[node.feature]
                threshold[g] = node.threshold
                left, right = node.children
                stack.append((left, 2 * i + 1, depth + 1))
                stack.append((right, 2 * i + 2, depth + 1))
        return cls(tuple(hst.trees), inputs, height, n_nodes, feature, threshold, tuple(nodes))
