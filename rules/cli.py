"""`vigil rules check DIR`, `vigil rules test DIR` and `vigil rules names`: the review gates.

``check`` loads the folder exactly as a worker would (exit 0, or 1 with file, line, rule and
reason); ``test`` also runs the ``*.test.yaml`` cases beside the rules (exit 0 when every case
passes, 1 when one fails or there is none, 2 when the rules or a test file do not load).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine.errors import RuleError

rules_app = typer.Typer(
    help="Check and test rule folders (see docs/rules.md).",
    no_args_is_help=True,
    add_completion=False,
)

FolderArg = Annotated[Path, typer.Argument(help="A folder of rule files (*.yaml).")]


def describe_error(exc: RuleError) -> str:
    """``file:line: rule 'id': reason``, leaving out what is unknown.

    >>> describe_error(RuleError("rules/x.yaml", "r1", "when: unknown name 'foo'", 12))
    "rules/x.yaml:12: rule 'r1': when: unknown name 'foo'"
    >>> describe_error(RuleError("rules/x.yaml", None, "not valid YAML: bad indent"))
    'rules/x.yaml: not valid YAML: bad indent'
    """
    where = exc.file if exc.line is None else f"{exc.file}:{exc.line}"
    what = f" rule {exc.rule!r}:" if exc.rule else ""
    return f"{where}:{what} {exc.reason}"


def _models() -> tuple[str, ...]:
    from online_models.catalog import model_names

    return tuple(model_names())


@rules_app.command("check")
def check(
    folder: FolderArg,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List the rules.")] = False,
) -> None:
    """Validate a rule folder as a worker would load it: exit 0, or 1 with file, line, reason."""
    from rules.loader import load_rules

    try:
        ruleset = load_rules(folder, _models())
    except RuleError as exc:
        typer.echo(f"error: {describe_error(exc)}", err=True)
        raise typer.Exit(1) from None
    if verbose:
        for rule in ruleset.ordered:
            s = rule.spec
            state = "" if s.enabled else "  (disabled)"
            typer.echo(
                f"  {s.priority:>4} {s.id:<36} {s.alert_type:<16} {s.severity:<8} "
                f"{','.join(s.scope.tiers)}{state}"
            )
    enabled = sum(1 for r in ruleset.rules if r.spec.enabled)
    typer.echo(f"ok: {len(ruleset.rules)} rules ({enabled} enabled), version {ruleset.version}")


@rules_app.command("names")
def names(
    contains: Annotated[str | None, typer.Argument(help="Only names containing this text.")] = None,
) -> None:
    """List every name a condition or reason may read, with its type."""
    from rules.names import known_names

    for name, kind in sorted(known_names(_models()).items()):
        if contains is None or contains in name:
            typer.echo(f"{name:<44} {kind}")


@rules_app.command("test")
def run_tests(
    folder: FolderArg,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Print every case.")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail when a rule has no test case.")
    ] = False,
) -> None:
    """Run the *.test.yaml cases beside the rules: exit 0 when all pass."""
    from rules.testing import run_folder

    try:
        report = run_folder(folder, _models())
    except RuleError as exc:
        typer.echo(f"error: {describe_error(exc)}", err=True)
        raise typer.Exit(2) from None
    for result in report.results:
        where = result.file if result.line is None else f"{result.file}:{result.line}"
        if not result.ok:
            typer.echo(f"FAIL {where}: {result.name}")
            for problem in result.problems:
                typer.echo(f"     {problem}")
        elif verbose:
            typer.echo(f"ok   {where}: {result.name}")
    if report.untested:
        typer.echo(f"rules without a test case: {', '.join(report.untested)}")
    if not report.results:
        typer.echo(f"error: no test cases (*.test.yaml) in {folder}", err=True)
        raise typer.Exit(1)
    passed = report.total - len(report.failed)
    typer.echo(
        f"{passed}/{report.total} cases passed in {len(report.files)} file(s), "
        f"rule set version {report.version}"
    )
    if report.failed or (strict and report.untested):
        raise typer.Exit(1)


if __name__ == "__main__":  # python -m rules.cli check DIR (what `vigil rules` mounts)
    rules_app(prog_name="vigil rules")
