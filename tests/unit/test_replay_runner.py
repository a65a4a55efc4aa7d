"""Replay in-process: the live pipeline over a simulated file, deterministic, with its report."""

from __future__ import annotations

import asyncio
import csv
import gzip
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.config import Settings
from engine.errors import ConfigError
from engine.pipeline import BatchResult
from replay.runner import (
    ReplayOptions,
    VariantRun,
    challenger_variant,
    champion_variant,
    run_replay,
    with_overrides,
)
from replay.sources import open_file_source
from simulator import simulate, write_jsonl
from tests.model_state import state_differences

ISSUE_KEYS = {
    "events",
    "invalid",
    "wall_seconds",
    "throughput_eps",
    "config_version",
    "alerts",
    "actions",
    "suppressed",
    "evaluation",
    "models",
}
# 40 customers over 20 days, seed 10: churners, an asset drop, four rules firing.
CUSTOMERS, DAYS, SEED = 40, 20, 10


@pytest.fixture(scope="module")
def sim_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "events.jsonl"
    write_jsonl(simulate(CUSTOMERS, DAYS, SEED), path)
    return path


def replay_to(
    inputs: list[Path],
    out: Path,
    *,
    compare: Path | None = None,
    batch_size: int = 500,
    horizon_days: float = 30.0,
    after_batch: Any = None,
    **champion: Any,
) -> dict[str, Any]:
    """Run a replay as the CLI does, without the CLI."""
    first = champion_variant(Settings(), **champion)
    variants = [first] + ([challenger_variant(first, compare)] if compare else [])
    runs = [VariantRun(v) for v in variants]
    options = ReplayOptions(out, horizon_days=horizon_days, batch_size=batch_size)
    sources = [open_file_source(p) for p in inputs]
    return asyncio.run(run_replay(sources, runs, options, after_batch=after_batch))


def decisions(out: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (out / "decisions.jsonl").read_bytes().splitlines()]


@pytest.fixture(scope="module")
def replayed(sim_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("rep")
    return out, replay_to([sim_file], out)


def test_the_same_input_and_configuration_give_identical_decision_bytes(
    sim_file: Path, replayed: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    first, _ = replayed
    replay_to([sim_file], tmp_path)
    a = (first / "decisions.jsonl").read_bytes()
    b = (tmp_path / "decisions.jsonl").read_bytes()
    assert a == b
    assert a.count(b"\n") == sum(1 for _ in sim_file.open("rb"))


def test_the_report_holds_the_issue_keys_and_agrees_with_the_decisions(
    sim_file: Path, replayed: tuple[Path, dict[str, Any]]
) -> None:
    out, report = replayed
    assert set(report) >= ISSUE_KEYS
    assert orjson.loads((out / "report.json").read_bytes()) == report
    records = decisions(out)
    events = [orjson.loads(line) for line in sim_file.read_bytes().splitlines()]
    assert report["events"] == len(events) == len(records)
    assert report["invalid"]["total"] == 0
    assert report["throughput_eps"] > 0 and report["wall_seconds"] > 0
    assert len(report["config_version"]) == 12

    alert_count = sum(len(r["alerts"]) for r in records)
    assert report["alerts"]["total"] == alert_count > 0
    fired = Counter(h["rule_id"] for r in records for h in r["rules"]["fired"])
    assert report["alerts"]["by_rule"] == dict(fired)
    assert sum(report["alerts"]["by_type"].values()) == alert_count
    chosen = Counter(c["channel"] for r in records for c in r["actions"]["candidates"]
                     if c["status"] == "chosen")  # fmt: skip
    assert report["actions"]["by_channel"] == dict(chosen)
    assert report["actions"]["total"] == sum(chosen.values()) > 0
    suppressed = Counter(s["reason"] for r in records for s in r["rules"]["suppressed"])
    suppressed.update(
        c["status"]
        for r in records
        for c in r["actions"]["candidates"]
        if c["status"] not in ("chosen", "outranked")
    )
    assert report["suppressed"]["by_reason"] == dict(suppressed)
    assert report["suppressed"]["total"] == sum(suppressed.values())
    per_day = report["alerts"]["per_day"]
    assert sum(sum(v) for v in per_day["by_type"].values()) == alert_count
    assert len(per_day["days"]) in (DAYS, DAYS + 1)  # UTC days of +08:00 bank days


def test_outcomes_in_the_input_drive_the_evaluation(
    sim_file: Path, replayed: tuple[Path, dict[str, Any]]
) -> None:
    _, report = replayed
    events = [orjson.loads(line) for line in sim_file.read_bytes().splitlines()]
    churned = {e["customer_id"] for e in events if e.get("label") == "churned"}
    dropped = {e["customer_id"] for e in events if e.get("label") == "asset_drop"}
    churn = report["evaluation"]["churn_risk"]
    assert churn["labelled_customers"] == len(churned) > 0
    assert churn["label"] == "churned"
    assert report["evaluation"]["asset_drop"]["labelled_customers"] == len(dropped)
    for metrics in report["evaluation"].values():
        for key in ("precision", "recall", "median_lead_hours", "labelled_customers"):
            assert key in metrics
    assert set(report["evaluation_by_rule"]) >= set(report["alerts"]["by_rule"])
    assert "true_positive" in report["definitions"] and "censored" in report["definitions"]
    for name, model in report["models"].items():
        assert {"roc_auc", "log_loss", "examples"} <= set(model), name
        assert model["scored"] == report["events"]


def test_decision_time_is_the_latest_event_time_of_its_batch(
    sim_file: Path, tmp_path: Path
) -> None:
    replay_to([sim_file], tmp_path, batch_size=100)
    records = decisions(tmp_path)
    for start in range(0, len(records), 100):
        batch = records[start : start + 100]
        latest = max(r["event_time"] for r in batch)
        assert {r["decision_time"] for r in batch} == {latest}
    assert not any(r["state_status"] != "applied" for r in records)


def test_bad_lines_are_counted_with_their_line_numbers_and_never_stop_the_run(
    sim_file: Path, tmp_path: Path
) -> None:
    good = sim_file.read_bytes().splitlines()[:300]
    far_future = orjson.loads(good[5])
    far_future.update(event_id="future-1", ts="2999-01-01T00:00:00+00:00")
    bad = {
        10: b"this is not json",
        20: b"[1, 2]",
        30: b'{"type": "app", "customer_id": "c1"}',
        40: orjson.dumps(far_future),
    }
    lines = list(good)
    for at in sorted(bad):
        lines.insert(at - 1, bad[at])
    for i in range(150):  # more than the listed 100
        lines.append(b"{broken " + str(i).encode())
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    report = replay_to([path], tmp_path / "out")
    invalid = report["invalid"]
    assert invalid["total"] == len(bad) + 150
    assert invalid["listed"] == 100 == len(invalid["first"])
    assert [(i["line"], i["reason"]) for i in invalid["first"][:4]] == [
        (10, "not_json"),
        (20, "not_an_object"),
        (30, "missing_field"),
        (40, "timestamp_in_future"),
    ]
    assert invalid["first"][4]["line"] == len(good) + len(bad) + 1
    assert all(i["source"] == str(path) for i in invalid["first"])
    assert invalid["by_reason"]["not_json"] == 151
    assert report["events"] == len(lines)
    records = decisions(tmp_path / "out")
    assert len(records) == len(good)
    assert max(r["decision_time"] for r in records) < "2999"


def to_csv(events: list[dict[str, Any]], path: Path) -> None:
    columns: list[str] = []
    for e in events:
        columns += [k for k in e if k not in columns]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for e in events:
            row = []
            for c in columns:
                v = e.get(c)
                if v is None:
                    row.append("")
                elif isinstance(v, dict | list):
                    row.append(orjson.dumps(v).decode())
                elif isinstance(v, bool):
                    row.append("true" if v else "false")
                else:
                    row.append(str(v))
            writer.writerow(row)


def test_a_csv_file_decides_like_the_same_events_in_jsonl(
    sim_file: Path, replayed: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out, _ = replayed
    events = [orjson.loads(line) for line in sim_file.read_bytes().splitlines()]
    path = tmp_path / "events.csv.gz"
    plain = tmp_path / "events.csv"
    to_csv(events, plain)
    path.write_bytes(gzip.compress(plain.read_bytes()))
    csv_report = replay_to([path], tmp_path / "out")
    assert csv_report["invalid"]["total"] == 0
    mine = decisions(tmp_path / "out")
    theirs = decisions(out)
    assert [r["alerts"] for r in mine] == [r["alerts"] for r in theirs]
    assert [r["actions"]["chosen"] for r in mine] == [r["actions"]["chosen"] for r in theirs]
    assert [r["features"] for r in mine] == [r["features"] for r in theirs]


def test_a_challenger_is_replayed_side_by_side_with_the_differences(
    sim_file: Path, replayed: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    _, champion = replayed
    rules = tmp_path / "rules"
    shutil.copytree(Settings().rules_dir, rules)
    dropped = rules / "assets.yaml"
    assert dropped.exists()
    dropped.unlink()  # the challenger raises no asset_drop alert
    spec = tmp_path / "variant.yaml"
    spec.write_text("name: no-asset-rules\nrules: rules\n")

    report = replay_to([sim_file], tmp_path / "out", compare=spec)
    challenger, comp = report["challenger"], report["comparison"]
    assert challenger["variant"] == "no-asset-rules"
    assert report["alerts"] == champion["alerts"]  # the champion is unchanged
    assert challenger["config"]["ruleset_version"] != report["config"]["ruleset_version"]
    asset_alerts = report["alerts"]["by_type"].get("asset_drop", 0)
    assert asset_alerts > 0
    assert challenger["alerts"]["by_type"].get("asset_drop", 0) == 0
    assert comp["alerts_only_champion"]["total"] == asset_alerts
    assert {a["type"] for a in comp["alerts_only_champion"]["first"]} == {"asset_drop"}
    assert comp["alerts_only_challenger"]["total"] == 0
    assert comp["alerts_both"] == report["alerts"]["total"] - asset_alerts
    out = tmp_path / "out"
    assert (out / "challenger" / "decisions.jsonl").read_bytes().count(b"\n") == report["events"]


def test_a_config_file_overrides_settings_with_paths_relative_to_it(tmp_path: Path) -> None:
    shutil.copytree(Settings().rules_dir, tmp_path / "my-rules")
    config = tmp_path / "variant.yaml"
    config.write_text("rules_dir: my-rules\nmodel_seed: 11\npolicy:\n  max_contacts_7d: 1\n")
    v = champion_variant(Settings(), config=config)
    assert v.settings.rules_dir == tmp_path / "my-rules"
    assert v.settings.model_seed == 11
    assert v.settings.policy.max_contacts_7d == 1
    assert v.settings.policy.quiet_hours_start == Settings().policy.quiet_hours_start
    assert str(config) in v.origin


def test_wrong_configurations_are_refused_naming_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"policy\.max_contacts_7d"):
        with_overrides(Settings(), {"policy": {"max_contacts_7d": -1}}, "x.yaml")
    with pytest.raises(ConfigError, match="not_a_setting"):
        with_overrides(Settings(), {"not_a_setting": 1}, "x.yaml")
    spec = tmp_path / "c.yaml"
    spec.write_text("rulez: here\n")
    with pytest.raises(ConfigError, match="unknown key"):
        challenger_variant(champion_variant(Settings()), spec)
    spec.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        challenger_variant(champion_variant(Settings()), spec)
    with pytest.raises(ConfigError):
        VariantRun(champion_variant(Settings(), rules=tmp_path / "no-such-rules"))
    with pytest.raises(ConfigError):
        VariantRun(champion_variant(Settings(), catalog=tmp_path / "no-such-catalog.yaml"))


def test_a_hook_sees_every_batch_of_every_variant(sim_file: Path, tmp_path: Path) -> None:
    seen: list[tuple[str, int]] = []

    def hook(run: VariantRun, result: BatchResult) -> None:
        seen.append((run.variant.name, len(result.decisions)))

    report = replay_to([sim_file], tmp_path, batch_size=1000, after_batch=hook)
    assert sum(n for _, n in seen) == report["events"]
    assert {name for name, _ in seen} == {"champion"}
    assert len(seen) == report["batches"] == -(-report["events"] // 1000)


def test_models_learn_during_the_replay_deterministically(sim_file: Path, tmp_path: Path) -> None:
    def learn_to(out: Path) -> dict[str, Any]:
        run = VariantRun(champion_variant(Settings()), learn=True, publish_every=6 * 3600.0)
        options = ReplayOptions(out, batch_size=500)
        return asyncio.run(run_replay([open_file_source(sim_file)], [run], options))

    report = learn_to(tmp_path / "a")
    learning = report["learning"]
    assert learning["enabled"] and learning["snapshots_installed"] > 0
    assert learning["counts"]["decisions"] > 0
    # the anomaly model learns without labels: it is warm before the end and scores change
    assert report["models"]["asset_drop"]["learned_examples"] > 0
    assert report["models"]["asset_drop"]["cold_share"] < 1.0
    versions = {
        r["scores"]["asset_drop"]["version"] for r in decisions(tmp_path / "a") if r["scores"]
    }
    assert len(versions) > 1  # snapshots were installed while replaying
    # what the models learned is not configuration: the version names the configuration only
    assert report["config_version"] == VariantRun(champion_variant(Settings())).config_version
    learn_to(tmp_path / "b")
    assert (tmp_path / "a" / "decisions.jsonl").read_bytes() == (
        tmp_path / "b" / "decisions.jsonl"
    ).read_bytes()


def test_the_scorer_follows_the_learner_as_a_pickled_copy_would(
    sim_file: Path, tmp_path: Path
) -> None:
    """Replay hands models over by having the scorer learn what the learner learned; the
    reference installs the learner's pickled models at every snapshot. Both give the same
    decisions, and the served models hold exactly the learner's state."""
    runs: dict[str, VariantRun] = {}
    for mode in ("follow", "copy"):
        run = VariantRun(champion_variant(Settings()), learn=True, publish_every=6 * 3600.0)
        assert run.learning is not None
        run.learning.copy_every_time = mode == "copy"
        options = ReplayOptions(tmp_path / mode, batch_size=500)
        asyncio.run(run_replay([open_file_source(sim_file)], [run], options))
        run.learning.publish(run.pipeline)  # hand over what was learned after the last one
        runs[mode] = run
    assert (tmp_path / "follow" / "decisions.jsonl").read_bytes() == (
        tmp_path / "copy" / "decisions.jsonl"
    ).read_bytes()
    follow = runs["follow"]
    assert follow.learning is not None and follow.learning.snapshots > 2
    learned = follow.learning.learner.scorer()
    served = follow.pipeline.scorer
    for name, live in learned.models.items():
        assert live.examples > 0, name  # every kind of model learned something
        assert served.models[name].examples == live.examples
        assert state_differences(served.models[name].model, live.model) == [], name
    assert sorted(served.offers) == sorted(learned.offers)  # (none here: see test_models_learner)
    for action, live in learned.offers.items():
        assert served.offers[action].examples == live.examples
        assert state_differences(served.offers[action].model, live.model) == [], action
    assert served.versions() == {
        n: f"{m.spec.version}.{follow.learning.snapshots}" for n, m in learned.models.items()
    }
    # the comparison sees one more example learned by one side
    extra = served.models["asset_drop"]
    extra.learn(dict.fromkeys(extra.spec.inputs, 0.5), None)
    assert state_differences(extra.model, learned.models["asset_drop"].model) != []


def test_batch_scoring_changes_no_decision(
    sim_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same replay with every batch scored event by event (by River itself) decides the
    same, byte for byte; the models are warm, so the batch forms did the scoring."""

    def replay(out: Path) -> dict[str, Any]:
        run = VariantRun(champion_variant(Settings()), learn=True, publish_every=6 * 3600.0)
        return asyncio.run(
            run_replay([open_file_source(sim_file)], [run], ReplayOptions(out, batch_size=500))
        )

    report = replay(tmp_path / "batched")
    assert report["models"]["asset_drop"]["cold_share"] < 0.9  # a third of it scored warm
    monkeypatch.setattr("online_models.scorer.MIN_BATCH", 10**9)
    replay(tmp_path / "one_by_one")
    assert (tmp_path / "batched" / "decisions.jsonl").read_bytes() == (
        tmp_path / "one_by_one" / "decisions.jsonl"
    ).read_bytes()


def test_only_the_scorer_that_got_the_first_copy_follows() -> None:
    from engine.sinks import MemorySink
    from engine.wiring import build_pipeline, store_limits
    from features.memory_store import MemoryStateStore
    from replay.learning import learning_for

    settings = Settings()
    learning = learning_for(settings)
    assert learning is not None

    def pipeline() -> Any:
        store = MemoryStateStore(store_limits(settings))
        return build_pipeline(settings, MemorySink(), store=store)[0]

    first, second = pipeline(), pipeline()
    learner = learning.learner
    t0 = 1_767_225_600.0
    for day in range(3):
        learner.observe(
            [
                {
                    "decision_id": f"d{day}-{c}",
                    "customer_id": f"c{c}",
                    "event_type": "transaction",
                    "event_time": t0 + day * 86400.0 + c,
                    "state_status": "applied",
                    "features": {"outflow_7d": float(c * day), "aum": 1000.0 + c},
                }
                for c in range(5)
            ]
        )
        for target in (first, first, second, first):
            learning.publish(target)
            own = learner.scorer().models["asset_drop"]
            served = target.scorer.models["asset_drop"]
            assert served.snapshot == learning.snapshots
            assert served.examples == own.examples > 0
            assert state_differences(served.model, own.model) == []
    assert learning._follower is first.scorer


def test_a_challenger_that_learns_at_random_is_copied_not_followed() -> None:
    from engine.sinks import MemorySink
    from engine.wiring import build_pipeline, store_limits
    from features.memory_store import MemoryStateStore
    from replay.learning import learning_for
    from replay.runner import with_overrides

    settings = with_overrides(Settings(), {"models": {"challenger": "arf"}}, "test")
    learning = learning_for(settings)
    assert learning is not None
    store = MemoryStateStore(store_limits(settings))
    target = build_pipeline(settings, MemorySink(), store=store)[0]
    models = target.scorer.models
    assert "churn_risk_challenger" in models
    learning.publish(target)
    learning.publish(target)
    assert learning._follower is target.scorer
    assert "churn_risk" in learning._followed and "asset_drop" in learning._followed
    assert "churn_risk_challenger" not in learning._followed
    followed, copied = models["asset_drop"], models["churn_risk_challenger"]
    learning.publish(target)
    assert models["asset_drop"] is followed  # learned in place
    assert models["churn_risk_challenger"] is not copied  # a new copy installed
    assert {m.snapshot for m in models.values()} == {3}
