"""`vigil rules check DIR` and `vigil rules test DIR`: exit codes and messages."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rules.cli import rules_app

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "rules" / "default"
runner = CliRunner()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    copy = tmp_path / "rules"
    shutil.copytree(DEFAULT, copy)
    return copy


def test_check_passes_the_default_rules() -> None:
    result = runner.invoke(rules_app, ["check", str(DEFAULT), "--verbose"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("ok: ")
    assert "aum_drop_30pct_from_peak" in result.output and "version" in result.output


def test_check_fails_with_file_line_rule_and_reason(folder: Path) -> None:
    path = folder / "churn.yaml"
    path.write_text(path.read_text().replace("score_churn_risk >= 0.8", "score_churn >= 0.8"))
    result = runner.invoke(rules_app, ["check", str(folder)])
    assert result.exit_code == 1
    line = next(n for n, t in enumerate(path.read_text().splitlines(), 1) if "score_churn >=" in t)
    assert result.output.strip() == (
        f"error: {path}:{line}: rule 'churn_model_high': when: unknown name 'score_churn' "
        "(did you mean 'score_churn_risk'?)"
    )


def test_check_reports_malformed_yaml_with_its_line(folder: Path) -> None:
    (folder / "extra.yaml").write_text("version: 1\nrules:\n  - id: x\n   description: y\n")
    result = runner.invoke(rules_app, ["check", str(folder)])
    assert result.exit_code == 1
    assert f"{folder / 'extra.yaml'}:4: not valid YAML" in result.output


def test_test_runs_the_cases_beside_the_rules() -> None:
    result = runner.invoke(rules_app, ["test", str(DEFAULT), "--strict"])
    assert result.exit_code == 0, result.output
    assert "cases passed in 3 file(s)" in result.output and "FAIL" not in result.output


def test_test_fails_when_a_case_fails_and_says_why(folder: Path) -> None:
    path = folder / "churn.yaml"
    path.write_text(path.read_text().replace("score_churn_risk >= 0.8", "score_churn_risk >= 0.9"))
    result = runner.invoke(rules_app, ["test", str(folder)])
    assert result.exit_code == 1
    assert "FAIL " in result.output and "a warm churn model is sure" in result.output
    assert "expected churn_model_high to fire; it did not" in result.output


def test_test_refuses_broken_rules_or_test_files_with_exit_2(folder: Path) -> None:
    (folder / "churn.test.yaml").write_text("version: 1\ncases:\n  - name: x\n    rule: nope\n")
    result = runner.invoke(rules_app, ["test", str(folder)])
    assert result.exit_code == 2
    assert (
        "churn.test.yaml:3: case 'x': 'rule' and" in result.output
        and "'rule' and 'expect' go together" in result.output
    )


def test_test_without_cases_fails_and_strict_wants_every_rule_tested(folder: Path) -> None:
    for path in folder.glob("*.test.yaml"):
        path.unlink()
    result = runner.invoke(rules_app, ["test", str(folder)])
    assert result.exit_code == 1 and "no test cases" in result.output
    shutil.copy(DEFAULT / "churn.test.yaml", folder)
    assert runner.invoke(rules_app, ["test", str(folder)]).exit_code == 0
    strict = runner.invoke(rules_app, ["test", str(folder), "--strict"])
    assert strict.exit_code == 1 and "rules without a test case: " in strict.output
    assert "aum_drop_30pct_from_peak" in strict.output


def test_names_lists_what_a_condition_may_read() -> None:
    result = runner.invoke(rules_app, ["names", "aum_drop"])
    assert result.exit_code == 0
    assert result.output.split() == ["aum_drop_from_peak_30d_pct", "number"]
    everything = runner.invoke(rules_app, ["names"]).output
    assert "score_churn_risk" in everything and "event_page" in everything


def test_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    result = runner.invoke(rules_app, ["check", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "is not a folder" in result.output


def test_the_module_runs_as_a_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rules.cli", "check", str(DEFAULT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.startswith("ok: "), done.stderr
