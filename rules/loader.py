"""Loading a rule folder: every file validated, every condition compiled, or nothing at all.

``load_rules(folder, model_names)`` returns a ``RuleSet`` or raises ``RuleError`` naming the
file, the line, the rule and the reason. The rule-set version is a hash of the rule files' names
and content (test files ``*.test.yaml`` are not part of it).

Refused: files that are not UTF-8 YAML, YAML aliases (``*name``) and duplicate keys, unknown
fields, values of the wrong kind, conditions outside the expression language (unknown names,
string-versus-number comparisons, anything not whitelisted), reason templates that are not plain
names, and a rule id used twice in the folder.

>>> from pathlib import Path
>>> ruleset = load_rules(Path("rules/default"), ["churn_risk", "asset_drop"])
>>> len(ruleset.version), ruleset.get("account_closure_page_visit").spec.alert_type
(12, 'churn_risk')
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
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
TEST_SUFFIXES = (".test.yaml", ".test.yml")
TEST_SUFFIX = TEST_SUFFIXES[0]
MAX_FILE_BYTES = 1_000_000
MAX_FILES = 200
# libyaml's loader when PyYAML has it (ten times faster), else the pure-Python one.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def rule_files(folder: Path) -> list[Path]:
    """The rule files of a folder: ``*.yaml``/``*.yml``, not tests, not hidden or editor files."""
    return _files(folder, lambda name: not name.endswith(TEST_SUFFIXES))


def case_files(folder: Path) -> list[Path]:
    """The rule test files of a folder: ``*.test.yaml``/``*.test.yml``."""
    return _files(folder, lambda name: name.endswith(TEST_SUFFIXES))


def _files(folder: Path, keep: Callable[[str], bool]) -> list[Path]:
    if not folder.is_dir():
        raise RuleError(str(folder), None, "is not a folder of rule files")
    try:
        found = sorted(
            p
            for p in folder.iterdir()
            if p.suffix in RULE_SUFFIXES
            and not p.name.startswith((".", "#", "~"))
            and keep(p.name)
            and p.is_file()
        )
    except OSError as exc:
        raise RuleError(str(folder), None, f"cannot be listed: {exc}") from None
    if len(found) > MAX_FILES:
        raise RuleError(str(folder), None, f"holds more than {MAX_FILES} rule files")
    return found


def ruleset_version(files: Iterable[tuple[str, bytes]]) -> str:
    """A content hash of the rule files: the same files give the same version everywhere.

    >>> ruleset_version([("a.yaml", b"rules: []")]) == ruleset_version([("a.yaml", b"rules: []")])
    True
    """
    digest = hashlib.sha256()
    for name, content in sorted(files):
        digest.update(name.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()[:12]


def read_files(files: Sequence[Path]) -> list[tuple[str, bytes]]:
    """(name, content) of each file, refusing unreadable and oversized files."""
    out = []
    for path in files:
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise RuleError(str(path), None, f"is larger than {MAX_FILE_BYTES} bytes")
            out.append((path.name, path.read_bytes()))
        except OSError as exc:
            raise RuleError(str(path), None, f"cannot be read: {exc.strerror or exc}") from None
    return out


def load_rules(folder: Path, model_names: Iterable[str]) -> RuleSet:
    """Load and compile every rule file of ``folder``; ``RuleError`` names the first fault."""
    files = rule_files(folder)
    if not files:
        raise RuleError(str(folder), None, "holds no rule files (*.yaml)")
    contents = read_files(files)
    return compile_rules(
        [(str(p), c) for p, (_, c) in zip(files, contents, strict=True)],
        known_names(model_names),
        version=ruleset_version(contents),
        source=str(folder),
    )


def compile_rules(
    files: Sequence[tuple[str, bytes]], names: Mapping[str, str], version: str, source: str = ""
) -> RuleSet:
    """Compile rule files given as (path, content); all of them or none."""
    rules: list[CompiledRule] = []
    seen: dict[str, CompiledRule] = {}
    for path, content in files:
        for rule in load_file(path, content, names):
            first = seen.get(rule.id)
            if first is not None:
                where = "this file" if first.file == path else first.file
                raise RuleError(
                    path,
                    rule.id,
                    f"duplicate rule id (first defined in {where}, line {first.line})",
                    rule.line,
                )
            seen[rule.id] = rule
            rules.append(rule)
    return RuleSet(rules=tuple(rules), version=version, source=source)


def parse_yaml(file: str, content: bytes) -> tuple[Any, yaml.Node | None]:
    """The document and its node tree (for line numbers); refuses aliases and duplicate keys."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RuleError(
            file, None, f"is not UTF-8 text: {exc.reason} at byte {exc.start}"
        ) from None
    try:
        # Aliases first, from the event stream: a document of nested aliases is exponential.
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.AliasEvent):
                line = None if event.start_mark is None else event.start_mark.line + 1
                raise RuleError(file, None, "aliases (*name) are not allowed in rule files", line)
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None, None
            _refuse_duplicate_keys(file, node)
            doc = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise RuleError(file, None, f"not valid YAML: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise RuleError(file, None, f"not valid YAML: {exc}") from None
    except RecursionError:
        raise RuleError(file, None, "not valid YAML: nested too deeply") from None
    return doc, node


def load_file(file: str, content: bytes, names: Mapping[str, str]) -> list[CompiledRule]:
    """The compiled rules of one file, or ``RuleError`` naming file, line, rule and reason."""
    doc, root = parse_yaml(file, content)
    if doc is None:
        raise RuleError(file, None, "is empty: expected 'version: 1' and a 'rules:' list")
    try:
        parsed = RuleFile.model_validate(doc)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = first_error(exc)
        loc = tuple(first["loc"])
        index = loc[1] if len(loc) > 1 and loc[0] == "rules" and isinstance(loc[1], int) else None
        inner = loc[2:] if index is not None else loc
        where = ".".join(str(p) for p in inner)
        if first["type"] == "extra_forbidden":
            reason = f"unknown field {str(loc[-1])!r}"
            where = ".".join(str(p) for p in inner[:-1])
        else:
            reason = first["msg"].removeprefix("Value error, ")
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        text = f"{where}: {reason}" if where else reason
        raise RuleError(file, _rule_id(doc, index), text + more, line_of(root, loc)) from None
    out = []
    for index, spec in enumerate(parsed.rules):
        at = ("rules", index)
        line = line_of(root, at)
        try:
            part: tuple[str | int, ...] = ("when",)
            when = compile_expression(spec.when, names)
            suppressors = []
            for j, s in enumerate(spec.suppress):
                part = ("suppress", j, "when")
                suppressors.append(Suppressor(compile_expression(s.when, names), s.reason))
            part = ("reason",)
            template = compile_template(spec.reason, names)
        except (ExpressionError, TemplateError) as exc:
            label = ".".join(str(p) for p in part)
            why = str(exc) if isinstance(exc, TemplateError) else f"{label}: {exc}"
            raise RuleError(file, spec.id, why, line_of(root, at + part)) from None
        out.append(
            CompiledRule(
                spec=spec,
                when=when,
                suppressors=tuple(suppressors),
                reason=template,
                file=file,
                line=line,
            )
        )
    return out


def first_error(exc: ValidationError) -> Any:
    """The error to report: an unknown field first (often the typo behind a missing one)."""
    errors = exc.errors(include_url=False)
    return next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])


def _refuse_duplicate_keys(file: str, root: yaml.Node) -> None:
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in keys:
                        raise RuleError(
                            file, None, f"duplicate key {key.value!r}", key.start_mark.line + 1
                        )
                    keys.add(key.value)
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def line_of(root: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
    """1-based line of the deepest node of ``loc`` (keys and list indexes) that exists."""
    node = root
    line = None if node is None else node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    line = key.start_mark.line + 1
                    node = value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        return node.start_mark.line + 2  # a block scalar starts on the line after its marker
    return line


def _rule_id(doc: Any, index: int | None) -> str | None:
    try:
        value = doc["rules"][index]["id"]
    except (TypeError, KeyError, IndexError):
        return None
    return value if isinstance(value, str) else str(value)
