"""RuleSetHolder: a changed folder replaces the running set only when it loads whole."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from engine.errors import RuleError
from online_models.catalog import model_names
from rules import reload as reload_module
from rules.reload import RuleSetHolder

DEFAULT = Path(__file__).resolve().parents[2] / "rules" / "default"
MODELS = tuple(model_names())
NEW_RULE = """\
version: 1
rules:
  - id: big_single_outflow
    description: One debit of 100,000 or more in 24 hours.
    alert_type: asset_drop
    severity: medium
    when: max_outflow_24h >= 100000
    reason: "a debit of {max_outflow_24h:,.0f}"
"""


def failures() -> float:
    return REGISTRY.get_sample_value("vigil_rule_reload_failures_total") or 0.0


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    copy = tmp_path / "rules"
    shutil.copytree(DEFAULT, copy)
    return copy


def touch_later(path: Path) -> None:
    """Make a file's modification time differ even on coarse file-system clocks."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_nothing_changed_nothing_reloaded(folder: Path) -> None:
    holder = RuleSetHolder(folder, MODELS)
    first = holder()
    assert holder.check() is False and holder() is first and holder.reloads == 0


def test_a_new_rule_file_is_picked_up_with_a_new_version(folder: Path) -> None:
    holder = RuleSetHolder(folder, MODELS)
    old = holder.version
    (folder / "outflows.yaml").write_text(NEW_RULE)
    assert holder.check() is True
    assert holder.version != old and holder.reloads == 1 and holder.last_error is None
    assert holder().get("big_single_outflow") is not None
    assert holder.check() is False  # and only once


def test_an_edited_rule_is_picked_up(folder: Path) -> None:
    holder = RuleSetHolder(folder, MODELS)
    path = folder / "churn.yaml"
    path.write_text(path.read_text().replace("score_churn_risk >= 0.8", "score_churn_risk >= 0.7"))
    touch_later(path)
    assert holder.check() is True
    assert holder().get("churn_model_high").when.source == (  # type: ignore[union-attr]
        "score_churn_risk >= 0.7 and not cold_churn_risk"
    )


def test_a_broken_file_is_refused_logged_and_counted_and_the_old_set_keeps_serving(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    holder = RuleSetHolder(folder, MODELS)
    serving = holder()
    before = failures()
    (folder / "outflows.yaml").write_text(NEW_RULE.replace("max_outflow_24h >=", "no_such >="))
    with caplog.at_level(logging.ERROR, logger="rules.reload"):
        assert holder.check() is False
    assert holder() is serving
    assert holder.failures == 1 and failures() == before + 1
    assert holder.last_error is not None and "outflows.yaml" in holder.last_error
    assert "unknown name 'no_such'" in holder.last_error
    assert any("keeps serving" in r.getMessage() for r in caplog.records)
    # the same broken folder is not retried (nor counted) on every tick
    assert holder.check() is False and holder.failures == 1 and failures() == before + 1
    # fixed: picked up, the error cleared
    (folder / "outflows.yaml").write_text(NEW_RULE)
    touch_later(folder / "outflows.yaml")
    assert holder.check() is True and holder.last_error is None
    assert holder().get("big_single_outflow") is not None


@pytest.mark.parametrize(
    "breakage",
    ["malformed_yaml", "duplicate_id", "type_error", "not_whitelisted", "unknown_field"],
)
def test_every_kind_of_broken_file_is_refused(folder: Path, breakage: str) -> None:
    holder = RuleSetHolder(folder, MODELS)
    serving = holder()
    text = {
        "malformed_yaml": "version: 1\nrules:\n  - id: [unclosed\n",
        "duplicate_id": NEW_RULE.replace("big_single_outflow", "churn_model_high"),
        "type_error": NEW_RULE.replace("max_outflow_24h >= 100000", "tier >= 100000"),
        "not_whitelisted": NEW_RULE.replace("max_outflow_24h >= 100000", "aum.real > 1"),
        "unknown_field": NEW_RULE + "    team: ops\n",
    }[breakage]
    (folder / "outflows.yaml").write_text(text)
    assert holder.check() is False and holder() is serving and holder.failures == 1


def test_deleting_every_rule_file_is_refused(folder: Path) -> None:
    holder = RuleSetHolder(folder, MODELS)
    serving = holder()
    for path in folder.glob("*.yaml"):
        if not path.name.endswith(".test.yaml"):
            path.unlink()
    assert holder.check() is False and holder() is serving
    assert "holds no rule files" in (holder.last_error or "")


def test_a_vanished_folder_is_refused(folder: Path) -> None:
    holder = RuleSetHolder(folder, MODELS)
    serving = holder()
    shutil.rmtree(folder)
    assert holder.check() is False and holder() is serving and holder.failures == 1


def test_test_files_and_other_files_do_not_trigger_a_reload(folder: Path) -> None:
    holder = RuleSetHolder(folder, MODELS)
    (folder / "churn.test.yaml").write_text("broken: [")
    (folder / ".outflows.yaml.tmp").write_text("half a file")
    (folder / "README.txt").write_text("notes")
    assert holder.check() is False and holder.failures == 0


def test_an_atomic_replace_is_picked_up(folder: Path) -> None:
    holder = RuleSetHolder(folder, MODELS)
    tmp = folder / ".churn.yaml.new"
    tmp.write_text((folder / "churn.yaml").read_text().replace("cooldown: 14d", "cooldown: 15d"))
    os.replace(tmp, folder / "churn.yaml")
    assert holder.check() is True
    assert holder().get("churn_model_high").spec.cooldown == 15 * 86400  # type: ignore[union-attr]


def test_an_unforeseen_loader_failure_never_escapes(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder = RuleSetHolder(folder, MODELS)
    serving = holder()

    def explode(*args: object) -> None:
        raise MemoryError("out of memory while loading")

    monkeypatch.setattr(reload_module, "load_rules", explode)
    (folder / "outflows.yaml").write_text(NEW_RULE)
    assert holder.check() is False and holder() is serving
    assert holder.last_error == "MemoryError: out of memory while loading"


def test_a_broken_folder_at_start_up_is_an_error(folder: Path) -> None:
    (folder / "outflows.yaml").write_text("rules: [")
    with pytest.raises(RuleError) as info:
        RuleSetHolder(folder, MODELS)
    assert info.value.file.endswith("outflows.yaml") and info.value.line is not None


def test_content_identical_to_the_running_set_is_not_a_reload(folder: Path) -> None:
    holder = RuleSetHolder(folder, MODELS)
    touch_later(folder / "churn.yaml")
    assert holder.check() is False and holder.reloads == 0 and holder.failures == 0
