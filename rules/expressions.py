"""A safe expression language for rule conditions, compiled once into plain Python closures.

The text is parsed with Python's ``ast`` module only to get a tree; every node is checked against
a whitelist and turned into a closure. Nothing is ever ``eval``-ed: no attribute access, no
subscripts, no calls but the whitelisted functions, no imports, no lambdas, bounded size.

Names resolve, in order, to: ``features`` (rolling features, e.g. ``aum_drop_from_peak_30d_pct``),
``score.<model>`` written ``score_<model>`` (e.g. ``score_churn_risk``), ``event_<field>``
(fields of the event, e.g. ``event_page``), and ``profile_<field>``.

>>> expr = compile_expression(
...     "aum_drop_from_peak_30d_pct >= 30 and tier in ['basic', 'affluent']",
...     known_names={"aum_drop_from_peak_30d_pct": "number", "tier": "string"})
>>> expr.evaluate({"aum_drop_from_peak_30d_pct": 42.0, "tier": "basic"})
True
>>> sorted(expr.names)
['aum_drop_from_peak_30d_pct', 'tier']
>>> compile_expression("tier > 3", known_names={"tier": "string"})
Traceback (most recent call last):
...
rules.expressions.ExpressionError: cannot compare tier (a string) with 3 (a number)
>>> compile_expression("__import__('os')", known_names={})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
rules.expressions.ExpressionError: function '__import__' is not allowed; allowed: abs, ...
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Value = float | int | str | bool | None
Env = Mapping[str, Any]
Fn = Callable[[Env], Any]

MAX_EXPRESSION_CHARS = 2000
MAX_NODES = 200


class ExpressionError(ValueError):
    """The expression is not in the language; the message says what is wrong."""


def _pct_change(before: float, after: float) -> float:
    """Percent change from ``before`` to ``after`` (0 when ``before`` is 0)."""
    return 0.0 if before == 0 else (after - before) / abs(before) * 100.0


def _days_since(then: float, now: float) -> float:
    """Days from epoch seconds ``then`` to ``now``."""
    return (now - then) / 86400.0


FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int]] = {
    # name: (function, min args, max args)
    "abs": (abs, 1, 1),
    "days_since": (_days_since, 2, 2),
    "max": (max, 2, 8),
    "min": (min, 2, 8),
    "pct_change": (_pct_change, 2, 2),
    "round": (round, 1, 2),
}

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: lambda a, b: 0.0 if b == 0 else a / b,
    ast.Mod: lambda a, b: 0.0 if b == 0 else a % b,
}
_ORDERED = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled condition: ``evaluate(env)`` and the names it reads."""

    source: str
    names: frozenset[str]
    _fn: Fn

    def evaluate(self, env: Env) -> Any:
        return self._fn(env)


def compile_expression(source: str, known_names: Mapping[str, str]) -> Expression:
    """Parse, check and compile ``source``. Raises ``ExpressionError`` naming the problem."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("the expression is empty")
    if len(source) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error at column {exc.offset}: {exc.msg}") from None
    count = sum(1 for _ in ast.walk(tree))
    if count > MAX_NODES:
        raise ExpressionError(f"the expression has {count} parts; at most {MAX_NODES} allowed")
    names: set[str] = set()
    fn = _compile(tree.body, known_names, names)
    return Expression(source, frozenset(names), fn)


def _compile(node: ast.AST, known: Mapping[str, str], names: set[str]) -> Fn:
    if isinstance(node, ast.Constant):
        value = node.value
        if not isinstance(value, (int, float, str, bool)) and value is not None:
            raise ExpressionError(f"constant {value!r} is not allowed")
        return lambda env: value
    if isinstance(node, ast.Name):
        name = node.id
        if name in ("true", "false", "none"):
            const = {"true": True, "false": False, "none": None}[name]
            return lambda env: const
        if name not in known:
            raise ExpressionError(f"unknown name {name!r}")
        names.add(name)
        return lambda env: env.get(name)
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_compile(e, known, names) for e in node.elts]
        if all(isinstance(e, ast.Constant) for e in node.elts):
            frozen = frozenset(item({}) for item in items)
            return lambda env: frozen
        return lambda env: [item(env) for item in items]
    if isinstance(node, ast.BoolOp):
        parts = [_compile(v, known, names) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda env: all(bool(p(env)) for p in parts)
        return lambda env: any(bool(p(env)) for p in parts)
    if isinstance(node, ast.UnaryOp):
        operand = _compile(node.operand, known, names)
        if isinstance(node.op, ast.Not):
            return lambda env: not operand(env)
        if isinstance(node.op, ast.USub):
            return lambda env: _number(operand(env), "-") * -1
        raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
    if isinstance(node, ast.BinOp):
        op = _BINARY.get(type(node.op))
        if op is None:
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
        left, right = _compile(node.left, known, names), _compile(node.right, known, names)
        return lambda env: op(_number(left(env), "arithmetic"), _number(right(env), "arithmetic"))
    if isinstance(node, ast.Compare):
        return _compile_compare(node, known, names)
    if isinstance(node, ast.Call):
        return _compile_call(node, known, names)
    if isinstance(node, ast.IfExp):
        test = _compile(node.test, known, names)
        body, orelse = _compile(node.body, known, names), _compile(node.orelse, known, names)
        return lambda env: body(env) if test(env) else orelse(env)
    raise ExpressionError(f"{type(node).__name__} is not allowed in a condition")


def _compile_compare(node: ast.Compare, known: Mapping[str, str], names: set[str]) -> Fn:
    _check_types(node, known)
    left = _compile(node.left, known, names)
    steps = []
    for op_node, comparator in zip(node.ops, node.comparators, strict=True):
        op = _COMPARE.get(type(op_node))
        if op is None:
            raise ExpressionError(f"comparison {type(op_node).__name__} is not allowed")
        steps.append((op, isinstance(op_node, _ORDERED), _compile(comparator, known, names)))

    def compare(env: Env) -> bool:
        a = left(env)
        for op, ordered, right in steps:
            b = right(env)
            if a is None or b is None:
                return False
            if ordered and (isinstance(a, str) != isinstance(b, str)):
                raise ExpressionError(f"cannot order {type(a).__name__} against {type(b).__name__}")
            if not op(a, b):
                return False
            a = b
        return True

    return compare


def _check_types(node: ast.Compare, known: Mapping[str, str]) -> None:
    """Refuse at load a comparison of a string with a number: it can never be meant."""
    parts = [node.left, *node.comparators]
    for op, a, b in zip(node.ops, parts, parts[1:], strict=False):
        if isinstance(op, (ast.In, ast.NotIn)):
            continue
        ta, tb = _type_of(a, known), _type_of(b, known)
        if {ta, tb} == {"string", "number"}:
            raise ExpressionError(
                f"cannot compare {ast.unparse(a)} (a {ta}) with {ast.unparse(b)} (a {tb})"
            )


def _type_of(node: ast.AST, known: Mapping[str, str]) -> str:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool):
            return "bool"
        if isinstance(node.value, (int, float)):
            return "number"
        if isinstance(node.value, str):
            return "string"
    if isinstance(node, ast.Name):
        return known.get(node.id, "any")
    if isinstance(node, (ast.BinOp, ast.Call)) or (
        isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
    ):
        return "number"
    return "any"


def _compile_call(node: ast.Call, known: Mapping[str, str], names: set[str]) -> Fn:
    if not isinstance(node.func, ast.Name):
        raise ExpressionError("only plain function calls are allowed (no attributes)")
    name = node.func.id
    spec = FUNCTIONS.get(name)
    if spec is None:
        raise ExpressionError(
            f"function {name!r} is not allowed; allowed: {', '.join(sorted(FUNCTIONS))}"
        )
    if node.keywords:
        raise ExpressionError(f"{name}() takes no keyword arguments")
    func, low, high = spec
    if not low <= len(node.args) <= high:
        raise ExpressionError(f"{name}() takes {low} to {high} arguments, got {len(node.args)}")
    args = [_compile(a, known, names) for a in node.args]

    def call(env: Env) -> Any:
        values = [a(env) for a in args]
        if any(v is None for v in values):
            return None
        return func(*(_number(v, name) for v in values))

    return call


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExpressionError(f"{where} needs a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpressionError(f"{where} got a non-finite number")
    return value
