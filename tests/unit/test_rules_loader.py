"""Loading rule folders: bad input is refused whole, naming the file, the line, the rule, why."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from engine.errors import RuleError
from online_models.catalog import model_names
from rules.loader import load_rules, rule_files
from rules.names import known_names

DEFAULT = Path(__file__).resolve().parents[2] / "rules" / "default"
MODELS = tuple(model_names())

GOOD = """\
version: 1
rules:
  - id: good_rule
    description: A rule that loads.
    alert_type: churn_risk
    severity: high
    when: aum_drop_from_peak_30d_pct >= 30
    reason: "AUM {aum:,.0f}"
"""


def rule(**fields: str) -> str:
    """One rule as YAML, with fields replaced or added (a value None removes the field)."""
    base = {
        "id": "r1",
        "description": "A test rule.",
        "alert_type": "churn_risk",
        "severity": "high",
        "when": "aum_drop_from_peak_30d_pct >= 30",
        "reason": '"dropped {aum_drop_from_peak_30d_pct:.0f}%"',
    }
    base.update(fields)
    lines = [f"    {k}: {v}" for k, v in base.items() if v is not None]
    lines[0] = "  - " + lines[0].lstrip()
    return "\n".join(lines) + "\n"


def folder(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def refused(tmp_path: Path, text: str, name: str = "bad.yaml") -> RuleError:
    folder(tmp_path, **{"good.yaml": GOOD, name: text})
    with pytest.raises(RuleError) as info:
        load_rules(tmp_path, MODELS)
    err = info.value
    assert err.file.endswith(name), err
    return err


def test_the_default_rule_set_loads() -> None:
    ruleset = load_rules(DEFAULT, MODELS)
    assert len(ruleset.rules) >= 10
    assert {r.spec.alert_type for r in ruleset.rules} >= {"churn_risk", "asset_drop"}
    names = known_names(MODELS)
    for r in ruleset.rules:
        assert r.when.names <= set(names)  # every name a rule reads exists today
        assert r.line is not None and r.file.endswith(".yaml")


def test_malformed_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    err = refused(tmp_path, "version: 1\nrules:\n  - id: x\n    when: [a, b\n    reason: y\n")
    assert "not valid YAML" in err.reason and err.line is not None and err.line >= 4


def test_a_colon_in_a_plain_value_is_malformed_yaml(tmp_path: Path) -> None:
    text = "version: 1\nrules:\n" + rule(description="Watch out: this breaks")
    err = refused(tmp_path, text)
    assert "not valid YAML" in err.reason and err.line == 4


def test_unknown_fields_are_refused_with_their_name_and_line(tmp_path: Path) -> None:
    text = "version: 1\nrules:\n" + rule(whenn="aum > 1")
    err = refused(tmp_path, text)
    assert err.rule == "r1" and err.reason == "unknown field 'whenn'" and err.line == 9


def test_unknown_fields_in_the_scope_are_refused(tmp_path: Path) -> None:
    text = "version: 1\nrules:\n" + rule(scope="{tiers: [basic], regions: [north]}")
    err = refused(tmp_path, text)
    assert err.rule == "r1" and "unknown field 'regions'" in err.reason and err.line == 9


def test_unknown_top_level_fields_are_refused(tmp_path: Path) -> None:
    err = refused(tmp_path, "version: 1\nrulez: []\n")
    assert "unknown field 'rulez'" in err.reason and err.line == 2


def test_missing_fields_are_refused(tmp_path: Path) -> None:
    err = refused(tmp_path, "version: 1\nrules:\n" + rule(reason=None))  # type: ignore[arg-type]
    assert err.rule == "r1" and "reason: Field required" in err.reason and err.line == 3


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"severity": "urgent"}, "severity: Input should be"),
        ({"alert_type": "fraud"}, "unknown alert type 'fraud'"),
        ({"cooldown": "a week"}, "duration 'a week' is not like"),
        ({"cooldown": "400d"}, "cooldown: Input should be less than or equal"),
        ({"priority": "-1"}, "priority: Input should be greater than or equal to 0"),
        ({"id": "Bad-Id"}, "id: String should match pattern"),
        ({"scope": "{tiers: [gold]}"}, "scope.tiers.0: Input should be"),
        ({"scope": "{tiers: []}"}, "scope.tiers: Tuple should have at least 1 item"),
        ({"suppress": "[vip]"}, "unknown suppression 'vip'"),
        ({"enabled": "maybe"}, "enabled: Input should be a valid boolean"),
    ],
)
def test_values_of_the_wrong_kind_are_refused(
    tmp_path: Path, fields: dict[str, str], reason: str
) -> None:
    err = refused(tmp_path, "version: 1\nrules:\n" + rule(**fields))
    assert reason in err.reason and err.rule == fields.get("id", "r1") and err.line is not None


def test_a_future_schema_version_is_refused(tmp_path: Path) -> None:
    err = refused(tmp_path, "version: 2\nrules:\n" + rule())
    assert "version: Input should be 1" in err.reason and err.line == 1


def test_unknown_features_name_the_rule_and_the_name(tmp_path: Path) -> None:
    text = "version: 1\nrules:\n" + rule(id="r2", when="aum_drop_pct_30d >= 30 and aum > 1")
    err = refused(tmp_path, text)
    assert err.rule == "r2" and err.line == 7
    assert "when: unknown name 'aum_drop_pct_30d'" in err.reason
    assert "did you mean 'aum_drop_from_peak_30d_pct'" in err.reason


def test_unknown_names_in_a_suppression_and_the_reason_are_refused(tmp_path: Path) -> None:
    text = "version: 1\nrules:\n" + rule(suppress="[{when: is_vip, reason: vip}]")
    err = refused(tmp_path, text)
    assert err.rule == "r1" and "suppress.0.when: unknown name 'is_vip'" in err.reason
    err = refused(tmp_path, "version: 1\nrules:\n" + rule(reason='"{aum_pct:.0f}"'))
    assert "reason template: unknown name 'aum_pct'" in err.reason and err.line == 8


def test_a_string_compared_with_a_number_is_a_type_error(tmp_path: Path) -> None:
    err = refused(tmp_path, "version: 1\nrules:\n" + rule(when='"tier >= 50000"'))
    assert err.rule == "r1"
    assert "cannot compare tier (a string) with 50000 (a number)" in err.reason


def test_a_number_format_on_a_string_is_a_type_error(tmp_path: Path) -> None:
    err = refused(tmp_path, "version: 1\nrules:\n" + rule(reason='"{tier:.0f}"'))
    assert "formats a number, but tier is a string" in err.reason


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        ('"aum.__class__ == 1"', "attribute access"),
        ("\"__import__('os').system('true') == 0\"", "only plain function calls"),
        ("\"open('x') == 1\"", "function 'open' is not allowed"),
        ('"aum ** 99 > 1"', "operator ** is not allowed"),
        ('"[x for x in [1]] == 1"', "comprehensions"),
        ('"aum[0] > 1"', "subscripts"),
    ],
)
def test_anything_outside_the_whitelist_is_refused(tmp_path: Path, when: str, reason: str) -> None:
    err = refused(tmp_path, "version: 1\nrules:\n" + rule(when=when))
    assert err.rule == "r1" and reason in err.reason and err.line == 7


def test_template_fields_cannot_reach_into_objects(tmp_path: Path) -> None:
    for template in ('"{aum.__class__}"', '"{aum[0]}"', '"{aum!r}"', '"{aum:{tier}}"'):
        err = refused(tmp_path, "version: 1\nrules:\n" + rule(reason=template))
        assert "reason template" in err.reason, template


def test_duplicate_ids_in_one_file_are_refused(tmp_path: Path) -> None:
    text = "version: 1\nrules:\n" + rule() + rule()
    err = refused(tmp_path, text)
    assert err.rule == "r1" and err.line == 9
    assert "duplicate rule id (first defined in this file, line 3)" in err.reason


def test_duplicate_ids_across_files_are_refused(tmp_path: Path) -> None:
    folder(tmp_path, **{"a.yaml": GOOD, "b.yaml": GOOD.replace("A rule", "Another rule")})
    with pytest.raises(RuleError) as info:
        load_rules(tmp_path, MODELS)
    assert info.value.file.endswith("b.yaml") and info.value.rule == "good_rule"
    assert "first defined in" in info.value.reason and "a.yaml" in info.value.reason


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    text = "version: 1\nrules:\n" + rule() + "    when: aum > 1\n"
    err = refused(tmp_path, text)
    assert "duplicate key 'when'" in err.reason and err.line == 9


def test_yaml_aliases_are_refused(tmp_path: Path) -> None:
    bomb = 'a: &a ["x","x"]\nb: &b [*a,*a]\nc: &c [*b,*b]\nrules: []\n'
    err = refused(tmp_path, bomb)
    assert "aliases" in err.reason and err.line == 2


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "is empty"),
        (b"# only a comment\n", "is empty"),
        (b"- a\n- b\n", "Input should be a valid dictionary"),
        (b"version: 1\nrules: 3\n", "rules: Input should be a valid tuple"),
        (b"\xff\xfe\x00r", "is not UTF-8"),
        (b"version: 1\nrules:\n\t- id: x\n", "not valid YAML"),
    ],
)
def test_files_that_are_not_rule_files_are_refused(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_bytes(content)
    with pytest.raises(RuleError) as info:
        load_rules(tmp_path, MODELS)
    assert info.value.file.endswith("bad.yaml") and reason in info.value.reason


def test_nothing_partial_is_loaded(tmp_path: Path) -> None:
    """One bad rule in one file: no rule set at all, not the good rules without it."""
    text = "version: 1\nrules:\n" + rule(id="fine") + rule(id="broken", when="nope > 1")
    folder(tmp_path, **{"a.yaml": GOOD, "b.yaml": text, "c.yaml": GOOD.replace("good_", "c_")})
    with pytest.raises(RuleError) as info:
        load_rules(tmp_path, MODELS)
    assert info.value.rule == "broken"


def test_an_empty_or_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="holds no rule files"):
        load_rules(tmp_path, MODELS)
    with pytest.raises(RuleError, match="is not a folder"):
        load_rules(tmp_path / "nope", MODELS)


def test_the_error_message_names_file_line_rule_and_reason(tmp_path: Path) -> None:
    err = refused(tmp_path, "version: 1\nrules:\n" + rule(when="nope > 1"))
    assert str(err) == f"{tmp_path / 'bad.yaml'}:7: rule 'r1': when: unknown name 'nope'"


def test_a_multi_line_condition_reports_the_line_of_its_text(tmp_path: Path) -> None:
    text = "version: 1\nrules:\n" + rule(when=">-\n      aum > 1\n      and nope > 2")
    err = refused(tmp_path, text)
    assert err.line == 8 and "unknown name 'nope'" in err.reason


def test_the_version_is_a_content_hash_of_the_rule_files(tmp_path: Path) -> None:
    copy = tmp_path / "rules"
    shutil.copytree(DEFAULT, copy)
    first = load_rules(copy, MODELS).version
    assert load_rules(copy, MODELS).version == first == load_rules(DEFAULT, MODELS).version
    (copy / "churn.test.yaml").write_text((copy / "churn.test.yaml").read_text() + "\n# note\n")
    assert load_rules(copy, MODELS).version == first  # test files are not part of it
    (copy / "churn.yaml").write_text((copy / "churn.yaml").read_text() + "\n# a comment\n")
    assert load_rules(copy, MODELS).version != first  # any byte of a rule file is


def test_hidden_editor_and_test_files_are_not_rule_files(tmp_path: Path) -> None:
    folder(
        tmp_path,
        **{
            "a.yaml": GOOD,
            "b.yml": GOOD.replace("good_", "b_"),
            ".a.yaml.swp": "junk",
            ".#a.yaml": "junk",
            "a.yaml~": "junk",
            "a.test.yaml": "cases: []",
            "notes.txt": "junk",
        },
    )
    (tmp_path / "sub.yaml").mkdir()
    assert [p.name for p in rule_files(tmp_path)] == ["a.yaml", "b.yml"]
    assert len(load_rules(tmp_path, MODELS).rules) == 2


def test_disabled_rules_are_validated_and_listed_but_never_evaluated(tmp_path: Path) -> None:
    text = "version: 1\nrules:\n" + rule(enabled="false", when="aum >= 0")
    folder(tmp_path, **{"a.yaml": text})
    ruleset = load_rules(tmp_path, MODELS)
    assert [r.id for r in ruleset.rules] == ["r1"]
    out = ruleset.evaluate(
        {"aum": 1.0}, tier="basic", segment=None, fired={}, ts=0, decision_id="d"
    )
    assert out.hits == ()
    broken = "version: 1\nrules:\n" + rule(enabled="false", when="nope > 1")
    folder(tmp_path, **{"a.yaml": broken})
    with pytest.raises(RuleError, match="unknown name 'nope'"):
        load_rules(tmp_path, MODELS)


def test_named_suppressions_expand_to_conditions(tmp_path: Path) -> None:
    text = "version: 1\nrules:\n" + rule(suppress="[opted_out, recent_complaint]")
    folder(tmp_path, **{"a.yaml": text})
    spec = load_rules(tmp_path, MODELS).rules[0].spec
    assert [(s.when, s.reason) for s in spec.suppress] == [
        ("profile_opted_out", "opted_out"),
        ("days_since_last_complaint < 14", "recent_complaint"),
    ]


def test_owner_tags_and_multi_line_text_are_accepted(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """\
        version: 1
        rules:
          - id: r1
            description: >-
              A long description
              over two lines.
            alert_type: asset_drop
            severity: critical
            scope: {tiers: [affluent], segments: [family, retiree]}
            when: >-
              aum_drop_from_peak_30d_pct >= 20
              and aum_peak_30d >= 500000
            priority: 999
            cooldown: 36h
            reason: "{aum:,.0f}"
            owner: wealth-ops
            tags: [aum, affluent]
        """
    )
    folder(tmp_path, **{"a.yaml": text})
    r = load_rules(tmp_path, MODELS).rules[0]
    assert r.spec.description == "A long description over two lines."
    assert r.spec.cooldown == 36 * 3600 and r.spec.owner == "wealth-ops"
    assert r.spec.scope.segments == ("family", "retiree")
    assert r.when.names == {"aum_drop_from_peak_30d_pct", "aum_peak_30d"}
