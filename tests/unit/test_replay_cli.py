"""`vigil replay` on the command line: runs, is deterministic, and refuses bad input up front."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
import typer
from typer.testing import CliRunner

from engine.config import Settings
from replay.cli import replay_command
from simulator import simulate, write_jsonl

app = typer.Typer()
app.command()(replay_command)


@pytest.fixture(scope="module")
def events_gz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "events.jsonl.gz"
    write_jsonl(simulate(25, 15, 7), path)
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stderr


def test_two_runs_write_byte_identical_decisions_and_a_full_report(
    events_gz: Path, tmp_path: Path
) -> None:
    code, err = invoke(events_gz, "--report", tmp_path / "a")
    assert code == 0, err
    assert "ev/s" in err and "report:" in err  # the progress line and the summary
    code, err = invoke(events_gz, "--report", tmp_path / "b", "--quiet")
    assert code == 0, err
    assert "ev/s" not in err
    a = (tmp_path / "a" / "decisions.jsonl").read_bytes()
    assert a and a == (tmp_path / "b" / "decisions.jsonl").read_bytes()
    report = orjson.loads((tmp_path / "a" / "report.json").read_bytes())
    assert report["events"] == a.count(b"\n")
    assert report["learning"]["enabled"] is True  # models learn by default
    html = (tmp_path / "a" / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html


def test_rules_catalog_config_and_compare_options_reach_the_pipeline(
    events_gz: Path, tmp_path: Path
) -> None:
    settings = Settings()
    rules = tmp_path / "rules"
    shutil.copytree(settings.rules_dir, rules)
    catalog = tmp_path / "catalog.yaml"
    shutil.copy(settings.actions_catalog, catalog)
    (tmp_path / "config.yaml").write_text("model_seed: 3\n")
    (tmp_path / "other.yaml").write_text("name: seed5\nsettings:\n  model_seed: 5\n")
    code, err = invoke(
        events_gz,
        "--report",
        tmp_path / "out",
        "--rules",
        rules,
        "--catalog",
        catalog,
        "--config",
        tmp_path / "config.yaml",
        "--compare",
        tmp_path / "other.yaml",
        "--horizon-days",
        "7",
        "--no-learn",
        "--quiet",
    )
    assert code == 0, err
    report = orjson.loads((tmp_path / "out" / "report.json").read_bytes())
    assert report["config"]["rules_dir"] == str(rules)
    assert report["config"]["actions_catalog"] == str(catalog)
    assert report["config"]["model_seed"] == 3
    assert report["challenger"]["config"]["model_seed"] == 5
    assert report["challenger"]["config"]["rules_dir"] == str(rules)  # inherited
    assert report["horizon_days"] == 7.0
    assert "challenger seed5" in err
    assert report["learning"]["enabled"] is False and "--no-learn" in report["learning"]["note"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.jsonl"], "no such file"),
        (["events.parquet"], "unknown input format"),
        ([], "nothing to replay"),
        (["events.jsonl", "--topic", "t", "--since", "2026-01-01T00:00:00Z"], "not both"),
        (["--topic", "t", "--since", "2026-01-01T00:00:00Z"], "needs --since and --until"),
        (["events.jsonl", "--since", "2026-01-01T00:00:00Z"], "go with --topic"),
        (["--topic", "t", "--since", "2026-01-01", "--until", "2026-01-02T00:00:00Z"], "offset"),
        (
            ["--topic", "t", "--since", "2026-01-02T00:00:00Z", "--until", "2026-01-01T00:00:00Z"],
            "after --since",
        ),
        (["events.jsonl", "--rules", "no-rules"], "no-rules"),
        (["events.jsonl", "--catalog", "no-catalog.yaml"], "no-catalog.yaml"),
        (["events.jsonl", "--config", "bad.yaml"], "invalid setting policy"),
        (["events.jsonl", "--config", "broken.yaml"], "not valid YAML"),
        (["events.jsonl", "--compare", "unknown.yaml"], "unknown key"),
    ],
)
def test_bad_input_or_configuration_fails_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "events.jsonl").write_text("{}\n")
    (tmp_path / "events.parquet").write_text("x")
    (tmp_path / "bad.yaml").write_text("policy: {max_contacts_7d: -3}\n")
    (tmp_path / "broken.yaml").write_text("policy: [unclosed\n")
    (tmp_path / "unknown.yaml").write_text("rulez: x\n")
    code, err = invoke(*args, "--report", tmp_path / "out")
    assert code == 2, err
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "out").exists()


def test_a_report_path_that_is_a_file_is_refused(events_gz: Path, tmp_path: Path) -> None:
    target = tmp_path / "report"
    target.write_text("")
    code, err = invoke(events_gz, "--report", target)
    assert code == 2 and "not a directory" in err
