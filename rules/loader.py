"""Loading a rule folder: every file validated, every condition compiled, or nothing at all.

``load_rules(folder, model_names)`` returns a ``RuleSet`` or raises ``RuleError`` naming the
file, the line, the rule and the reason. The rule-set version is a hash of the files' content.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from engine.errors import RuleError
from rules.evaluator import CompiledRule, RuleSet, Suppressor
from rules.expressions import ExpressionError, compile_expression
from rules.names import known_names
from rules.schema import RuleFile
from rules.templates import TemplateError, compile_template

RULE_SUFFIXES = (".yaml", ".yml")
TEST_SUFFIX = ".test.yaml"


def rule_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise RuleError(str(folder), None, "is not a folder of rule files")
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix in RULE_SUFFIXES and not p.name.endswith(TEST_SUFFIX)
    )


def ruleset_version(files: Iterable[tuple[str, bytes]]) -> str:
    digest = hashlib.sha256()
    for name, content in sorted(files):
        digest.update(name.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()[:12]


def load_rules(folder: Path, model_names: Iterable[str]) -> RuleSet:
    files = rule_files(folder)
    if not files:
        raise RuleError(str(folder), None, "holds no rule files (*.yaml)")
    names = known_names(model_names)
    contents = [(p.name, p.read_bytes()) for p in files]
    rules: list[CompiledRule] = []
    seen: dict[str, str] = {}
    for path, (_, content) in zip(files, contents, strict=True):
        for rule in _load_file(str(path), content, names):
            if rule.id in seen:
                raise RuleError(str(path), rule.id, f"duplicate rule id (also in {seen[rule.id]})")
            seen[rule.id] = str(path)
            rules.append(rule)
    return RuleSet(rules=tuple(rules), version=ruleset_version(contents), source=str(folder))


def _load_file(file: str, content: bytes, names: dict[str, str]) -> list[CompiledRule]:
    try:
        text = content.decode("utf-8")
        doc = yaml.safe_load(text)
        lines = _rule_lines(text)
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        raise RuleError(
            file, None, f"not valid YAML: {exc}", None if line is None else line + 1
        ) from None
    try:
        parsed = RuleFile.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = list(first["loc"])
        index = loc[1] if len(loc) > 1 and loc[0] == "rules" and isinstance(loc[1], int) else None
        rule_id = _rule_id(doc, index)
        where = ".".join(str(p) for p in loc[2:]) or ".".join(str(p) for p in loc) or "(file)"
        line = lines[index] if index is not None and index < len(lines) else None
        raise RuleError(file, rule_id, f"{where}: {first['msg']}", line) from None
    out = []
    for index, spec in enumerate(parsed.rules):
        line = lines[index] if index < len(lines) else None
        try:
            when = compile_expression(spec.when, names)
            suppressors = tuple(
                Suppressor(compile_expression(s.when, names), s.reason) for s in spec.suppress
            )
            reason = compile_template(spec.reason, names)
        except (ExpressionError, TemplateError) as exc:
            raise RuleError(file, spec.id, str(exc), line) from None
        out.append(CompiledRule(spec=spec, when=when, suppressors=suppressors, reason=reason))
    return out


def _rule_id(doc: Any, index: int | None) -> str | None:
    try:
        value = doc["rules"][index]["id"]
        return str(value)
    except (TypeError, KeyError, IndexError):
        return None


def _rule_lines(text: str) -> list[int]:
    """1-based line of each item of the ``rules:`` list, for error messages."""
    node = yaml.compose(text)
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if key.value == "rules" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []
