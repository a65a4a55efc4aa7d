"""Rule tests as data: every case of every ``*.test.yaml`` in rules/default is a test here; and
the runner itself catches what it should."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.errors import RuleError
from online_models.catalog import model_names
from rules.loader import case_files, load_rules, read_files
from rules.testing import LoadedCase, load_cases, run_case, run_folder

DEFAULT = Path(__file__).resolve().parents[2] / "rules" / "default"
MODELS = tuple(model_names())
RULESET = load_rules(DEFAULT, MODELS)


def default_cases() -> list[LoadedCase]:
    files = case_files(DEFAULT)
    out: list[LoadedCase] = []
    for path, (_, content) in zip(files, read_files(files), strict=True):
        out.extend(load_cases(str(path), content, RULESET, MODELS))
    return out


CASES = default_cases()


@pytest.mark.parametrize(
    "loaded", CASES, ids=[f"{Path(c.file).name}:{c.line}:{c.case.name}" for c in CASES]
)
def test_default_rule_case(loaded: LoadedCase) -> None:
    result = run_case(RULESET, loaded, MODELS)
    assert result.ok, "\n".join(result.problems)


def test_every_default_rule_has_cases_that_fire_it_and_keep_it_silent() -> None:
    fired = {c.case.rule for c in CASES if c.case.expect == "fire"}
    fired |= {r for c in CASES for r in c.case.fires_exactly or ()}
    silent = {c.case.rule for c in CASES if c.case.expect in ("silent", "suppressed")}
    ids = {r.id for r in RULESET.rules}
    assert ids - fired == set(), "rules no case fires"
    assert ids - silent == set(), "rules no case keeps silent"
    assert len(case_files(DEFAULT)) >= 3


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    copy = tmp_path / "rules"
    shutil.copytree(DEFAULT, copy)
    for path in copy.glob("*.test.yaml"):
        path.unlink()
    return copy


def write_cases(folder: Path, body: str) -> None:
    (folder / "x.test.yaml").write_text("version: 1\ncases:\n" + body)


def test_a_wrong_expectation_fails_with_what_happened(folder: Path) -> None:
    write_cases(
        folder,
        """\
  - name: wrong reason
    given:
      scores: {churn_risk: 0.86}
    rule: churn_model_high
    expect: fire
    reason: "churn model score 0.87"
  - name: expects silence but it fires
    given:
      scores: {churn_risk: 0.9}
    rule: churn_model_high
    expect: silent
  - name: expects a fire but it is cooled down
    given:
      scores: {churn_risk: 0.9}
      fired: {churn_model_high: 1d}
    rule: churn_model_high
    expect: fire
  - name: expects suppression by opt-out but it is the cooldown
    given:
      scores: {churn_risk: 0.9}
      fired: {churn_model_high: 1d}
    rule: churn_model_high
    expect: suppressed
    suppressed_by: opted_out
  - name: exactly the wrong set
    given:
      scores: {churn_risk: 0.9}
    fires_exactly: [asset_drop_anomaly]
""",
    )
    report = run_folder(folder, MODELS)
    assert report.total == 5 and len(report.failed) == 5 and not report.ok
    problems = [r.problems[0] for r in report.failed]
    assert problems == [
        "reason is 'churn model score 0.86'; expected 'churn model score 0.87'",
        "expected churn_model_high to stay silent; it fired: 'churn model score 0.90'",
        "expected churn_model_high to fire; it did not (suppressed: cooldown)",
        "churn_model_high was suppressed by 'cooldown', expected 'opted_out'",
        "fired ['churn_model_high']; expected exactly ['asset_drop_anomaly']",
    ]
    assert all(r.line is not None for r in report.failed)
    assert "churn_model_high" not in report.untested
    assert "aum_drop_30pct_from_peak" in report.untested


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("  - name: n\n    rule: no_such_rule\n    expect: fire\n", "unknown rule 'no_such_rule'"),
        (
            "  - name: n\n    given: {features: {aum_pct: 1}}\n    fires_exactly: []\n",
            "unknown feature 'aum_pct'",
        ),
        (
            "  - name: n\n    given: {features: {tier: 3}}\n    fires_exactly: []\n",
            "feature 'tier' is a string",
        ),
        (
            "  - name: n\n    given: {scores: {fraud: 0.5}}\n    fires_exactly: []\n",
            "unknown model 'fraud'",
        ),
        (
            "  - name: n\n    given: {event: {pagee: x}}\n    fires_exactly: []\n",
            "unknown event field 'pagee'",
        ),
        (
            "  - name: n\n    given: {profile: {vip: true}}\n    fires_exactly: []\n",
            "unknown profile field 'vip'",
        ),
        (
            "  - name: n\n    given: {fired: {nope: 1d}}\n    fires_exactly: []\n",
            "unknown rule 'nope'",
        ),
        (
            "  - name: n\n    given: {fired: {churn_model_high: soon}}\n    fires_exactly: []\n",
            "is not like '7d'",
        ),
        ("  - name: n\n    rule: churn_model_high\n", "'rule' and 'expect' go together"),
        ("  - name: n\n    expect: fire\n", "'rule' and 'expect' go together"),
        ("  - name: n\n    given: {}\n", "needs 'rule' and 'expect', or 'fires_exactly'"),
        (
            "  - name: n\n    rule: churn_model_high\n    expect: silent\n    reason: x\n",
            "need 'expect: fire'",
        ),
        ("  - name: n\n    fires_exactly: []\n    expected: 1\n", "unknown field 'expected'"),
    ],
)
def test_a_broken_case_is_a_load_error_naming_file_case_and_reason(
    folder: Path, body: str, reason: str
) -> None:
    write_cases(folder, body)
    with pytest.raises(RuleError) as info:
        run_folder(folder, MODELS)
    assert info.value.file.endswith("x.test.yaml") and reason in info.value.reason
    assert info.value.line is not None


def test_a_folder_without_cases_reports_nothing_passed(folder: Path) -> None:
    report = run_folder(folder, MODELS)
    assert report.total == 0 and not report.ok
    assert set(report.untested) == {r.id for r in RULESET.rules}


def test_the_tier_follows_aum_unless_given(folder: Path) -> None:
    write_cases(
        folder,
        """\
  - name: aum makes the tier
    given: {features: {aum: 800000, login_count_prev4w_weekly_avg: 5, login_count_7d: 0}}
    rule: app_engagement_collapsed
    expect: silent
  - name: a given tier wins
    given:
      features: {aum: 800000, tier: basic, login_count_prev4w_weekly_avg: 5, login_count_7d: 0}
    rule: app_engagement_collapsed
    expect: fire
""",
    )
    assert run_folder(folder, MODELS).ok
