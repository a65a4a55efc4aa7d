"""Proof of the learning loop on River's own Phishing dataset, through Vigil's model layer.

River's binary-classification benchmark publishes an accuracy of 0.8872 for
``StandardScaler | LogisticRegression(optimizer=SGD(0.005))`` on Phishing under progressive
validation. Our layer (``LiveModel``: inputs, predict, learn) must reproduce it, and the
``Learner`` (decision records in, outcomes joined by time, snapshot predictions judged when the
label arrives) must give exactly what ``river.evaluate.progressive_val_score`` gives with the
same ``delay``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from river import datasets, evaluate, metrics

from online_models.catalog import CHURN_RISK, ModelCatalog, ModelSpec
from online_models.learner import LabelledExample, Learner, LearnerConfig
from online_models.scorer import LiveModel

PHISHING_INPUTS: tuple[str, ...] = tuple(next(iter(datasets.Phishing()))[0])


def phishing_spec() -> ModelSpec:
    """The churn model's pipeline, reading the Phishing features, never cold."""
    return replace(CHURN_RISK, name="phishing", inputs=PHISHING_INPUTS, min_examples=0)


def test_our_layer_reproduces_rivers_published_phishing_accuracy() -> None:
    spec = phishing_spec()
    live = LiveModel(spec, spec.build(42))
    correct = seen = 0
    for x, y in datasets.Phishing():
        features = live.inputs(x)
        p = live.predict(features)  # progressive validation: predict first...
        correct += (p > 0.5) == y
        seen += 1
        live.learn(features, y)  # ...then learn
    assert seen == 1250 and live.examples == 1250
    assert round(correct / seen, 4) == 0.8872


def delayed_stream(delay: int) -> list[tuple[str, dict[str, Any]]]:
    """Phishing as decision records (item i at second i, its own customer) and outcomes that
    arrive ``delay`` seconds later, in River's arrival order: labels due at t before item t."""
    items = list(datasets.Phishing())
    out: list[tuple[str, dict[str, Any]]] = []

    def outcome(j: int) -> tuple[str, dict[str, Any]]:
        label = "churned" if items[j][1] else "retained"
        return "outcome", {"customer_id": f"c{j}", "label": label, "ts": float(j + delay)}

    for i, (x, _) in enumerate(items):
        j = i - delay
        if j >= 0:
            out.append(outcome(j))
        out.append(
            (
                "decision",
                {
                    "decision_id": f"d{i}",
                    "customer_id": f"c{i}",
                    "event_type": "transaction",
                    "event_time": float(i),
                    "state_status": "applied",
                    "features": x,
                    "actions": {"chosen": []},
                },
            )
        )
    out.extend(outcome(j) for j in range(max(len(items) - delay, 0), len(items)))
    return out


def learner_accuracy(delay: int) -> tuple[float, int]:
    examples: list[LabelledExample] = []
    learner = Learner(
        LearnerConfig(horizon=1e9, positive_window=1e9, lateness=0.0),
        ModelCatalog(champions=(phishing_spec(),), challengers=(), offer=None),
        listener=examples.append,
    )
    for kind, doc in delayed_stream(delay):
        if kind == "decision":
            learner.observe_decision(doc)
        else:
            learner.observe_outcome(doc)
    correct = sum((e.p > 0.5) == e.y for e in examples)
    return correct / len(examples), learner.scorer().models["phishing"].examples


@pytest.mark.parametrize("delay", [1, 25, 100])
def test_delayed_labels_through_the_learner_equal_rivers_progressive_val_score(
    delay: int,
) -> None:
    reference = evaluate.progressive_val_score(
        datasets.Phishing(), phishing_spec().build(42), metrics.Accuracy(), delay=delay
    ).get()
    ours, learned = learner_accuracy(delay)
    assert learned == 1250
    assert ours == pytest.approx(reference, abs=1e-12)


def test_the_delay_matters() -> None:
    """The figures above are not delay-blind: a longer delay costs accuracy here."""
    assert learner_accuracy(100)[0] < learner_accuracy(1)[0]
