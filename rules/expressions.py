"""A safe expression language for rule conditions, compiled once into plain Python closures.

The text is tokenised and parsed with Python's ``ast`` module only to get a tree; every node is
checked against a whitelist, type-checked and turned into a closure. Nothing is ever ``eval``-ed:
no attribute access, no subscripts, no calls but the whitelisted functions, no imports, no
lambdas, comprehensions, walrus, f-strings or starred arguments, no names starting with ``_``,
and the size (characters, tokens, nodes) and the nesting depth are bounded before anything is
built, so no text can exhaust the stack or the memory of the loader or of the evaluator.

Names are typed (``number``, ``string``, ``bool``; see ``rules.names``): comparing a string with a
number, arithmetic on a string and a list of the wrong kind after ``in`` are refused at load.

A *missing* value (``None``: an event field the event does not have, ``x / 0``) makes ordered
comparisons false, equals only ``none``, and flows through arithmetic and functions as missing;
``coalesce(x, default)`` replaces it.

>>> expr = compile_expression(
...     "aum_drop_from_peak_30d_pct >= 30 and tier in ['basic', 'affluent']",
...     known_names={"aum_drop_from_peak_30d_pct": "number", "tier": "string"})
>>> expr.evaluate({"aum_drop_from_peak_30d_pct": 42.0, "tier": "basic"})
True
>>> sorted(expr.names)
['aum_drop_from_peak_30d_pct', 'tier']
>>> [c.source for c in expr.clauses]
['aum_drop_from_peak_30d_pct >= 30', "tier in ['basic', 'affluent']"]
>>> compile_expression("tier > 3", known_names={"tier": "string"})
Traceback (most recent call last):
...
rules.expressions.ExpressionError: cannot compare tier (a string) with 3 (a number)
>>> compile_expression("__import__('os')", known_names={})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
rules.expressions.ExpressionError: function '__import__' is not allowed; allowed: abs, ...
>>> compile_expression("aum_drop_pct > 30", known_names={"aum_drop_from_peak_30d_pct": "number"})
Traceback (most recent call last):
...
rules.expressions.ExpressionError: unknown name 'aum_drop_pct' (did you mean 'aum_drop_from_peak_30d_pct'?)
"""  # noqa: E501

from __future__ import annotations

import ast
import difflib
import io
import math
import operator
import tokenize
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

Env = Mapping[str, Any]
Fn = Callable[[Env], Any]

MAX_EXPRESSION_CHARS = 2000
MAX_TOKENS = 400
MAX_NODES = 400
MAX_DEPTH = 32
MAX_NUMBER = 1e15
MAX_LIST_ITEMS = 100

NUMBER, STRING, BOOL, NONE, ANY = "number", "string", "bool", "none", "any"
_ARTICLE = {NUMBER: "a number", STRING: "a string", BOOL: "a bool", NONE: "none", ANY: "a value"}
_CONSTANT_NAMES: dict[str, bool | None] = {"true": True, "false": False, "none": None}


class ExpressionError(ValueError):
    """The expression is not in the language; the message says what is wrong."""


# --- the whitelisted functions ----------------------------------------------------------------


def _pct_change(before: float, after: float) -> float | None:
    """Percent change from ``before`` to ``after``; missing when ``before`` is 0.

    >>> _pct_change(200.0, 150.0), _pct_change(0.0, 5.0)
    (-25.0, None)
    """
    return None if before == 0 else (after - before) / abs(before) * 100.0


def _days_since(then: float, now: float) -> float:
    """Days from epoch seconds ``then`` to ``now`` (``now`` defaults to the event time).

    >>> _days_since(0.0, 86400.0 * 3)
    3.0
    """
    return (now - then) / 86400.0


def _clamp(value: float, low: float, high: float) -> float:
    """``value`` held within ``[low, high]``.

    >>> _clamp(1.7, 0.0, 1.0), _clamp(-3.0, 0.0, 1.0)
    (1.0, 0.0)
    """
    return min(max(value, low), high)


def _round(value: float, digits: float = 0) -> float:
    return round(value, int(_clamp(digits, -15, 15)))


@dataclass(frozen=True, slots=True)
class Function:
    """A whitelisted function: ``fn`` gets numbers only; a missing argument gives missing."""

    fn: Callable[..., Any]
    min_args: int
    max_args: int
    doc: str


FUNCTIONS: dict[str, Function] = {
    "abs": Function(abs, 1, 1, "abs(x): x without its sign"),
    "clamp": Function(_clamp, 3, 3, "clamp(x, low, high): x held within [low, high]"),
    "coalesce": Function(lambda *a: a, 2, 8, "coalesce(x, y, ...): the first that is not missing"),
    "days_since": Function(
        _days_since, 1, 2, "days_since(t[, now]): days from epoch seconds t to now (event time)"
    ),
    "max": Function(max, 2, 8, "max(x, y, ...): the largest"),
    "min": Function(min, 2, 8, "min(x, y, ...): the smallest"),
    "pct_change": Function(
        _pct_change, 2, 2, "pct_change(before, after): percent change; missing if before is 0"
    ),
    "round": Function(_round, 1, 2, "round(x[, digits]): x rounded"),
}


# --- the compiled expression ------------------------------------------------------------------


Guard = tuple[str, Callable[[Any], Any]]


@dataclass(frozen=True, slots=True)
class Clause:
    """A top-level part of a condition (an operand of its outer ``and``/``or``).

    ``cost`` is a static estimate of its evaluation cost; ``guard``, when the clause is the
    common shape ``name <op> constant``, is ``(name, test)`` with ``test(value)`` a C-level
    callable that is true exactly when the clause holds (a missing value fails it).
    """

    source: str
    names: tuple[str, ...]
    fn: Fn
    cost: int = 0
    guard: Guard | None = None


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled condition: ``evaluate(env)``, the names it reads and its top-level clauses.

    ``fn`` is the compiled closure itself (``evaluate`` without the method call).
    """

    source: str
    names: frozenset[str]
    fn: Fn
    clauses: tuple[Clause, ...]
    type: str = ANY
    guard: Guard | None = None
    rest: Fn | None = None
    conjunctive: bool = False  # a top-level `and` (or a single clause): all clauses held

    def evaluate(self, env: Env) -> Any:
        return self.fn(env)

    def evaluate_fast(self, env: Env) -> Any:
        """The same truth as ``evaluate``, cheapest clause first (what the evaluator runs).

        >>> e = compile_expression("max(a, b) > 3 and a > 1", {"a": "number", "b": "number"})
        >>> e.guard[0], bool(e.evaluate_fast({"a": 2.0, "b": 5.0})), e.evaluate_fast({"a": 0.5})
        ('a', True, False)
        """
        if self.guard is not None:
            name, test = self.guard
            try:
                if not test(env[name]):
                    return False
            except (KeyError, TypeError):
                return False
        return True if self.rest is None else self.rest(env)

    def held(self, env: Env) -> list[tuple[str, dict[str, Any]]]:
        """Why it fired: the clauses that hold in ``env`` (where the whole condition holds),
        each with the values of its names. Under a top-level ``and`` that is every clause."""
        get = env.get
        return [
            (c.source, {n: get(n) for n in c.names})
            for c in self.clauses
            if self.conjunctive or c.fn(env)
        ]


@dataclass(frozen=True, slots=True)
class _Node:
    """A compiled node: its closure, its static type, and what it is (for specialisation)."""

    fn: Fn
    type: str
    const: bool = False
    value: Any = None
    name: str | None = None
    cost: int = 1
    guard: Guard | None = None


def compile_expression(source: str, known_names: Mapping[str, str]) -> Expression:
    """Parse, check and compile ``source``. Raises ``ExpressionError`` naming the problem.

    ``known_names`` maps every readable name to its type: ``number``, ``string`` or ``bool``.
    """
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("the expression is empty")
    if len(source) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    # A condition may be written over several YAML lines; a newline is never needed inside one.
    text = source.replace("\r", " ").replace("\n", " ").strip()
    _check_tokens(text)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "1and 2" is a warning in Python: refuse it here
            tree = ast.parse(text, filename="<rule>", mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error at column {exc.offset}: {exc.msg}") from None
    except (MemoryError, RecursionError, ValueError, Warning):  # pragma: no cover - bounded
        raise ExpressionError("the expression is too deeply nested") from None
    _check_shape(tree)
    names: set[str] = set()
    compiler = _Compiler(known_names, names, text)
    node = compiler.compile(tree.body)
    clauses = compiler.clauses(tree.body)
    guard, rest = node.guard, None
    if isinstance(tree.body, ast.BoolOp) and isinstance(tree.body.op, ast.And):
        # Conjuncts commute: run the cheapest first, and a `name <op> constant` one as a guard.
        ordered = sorted(clauses, key=lambda c: (c.guard is None, c.cost))
        if ordered[0].guard is not None:
            guard, ordered = ordered[0].guard, ordered[1:]
        fns = [c.fn for c in ordered]
        rest = None if not fns else fns[0] if len(fns) == 1 else _and(fns)
    elif guard is None:
        rest = node.fn
    conjunctive = not (isinstance(tree.body, ast.BoolOp) and isinstance(tree.body.op, ast.Or))
    return Expression(text, frozenset(names), node.fn, clauses, node.type, guard, rest, conjunctive)


def _check_tokens(text: str) -> None:
    """Bound the token count before parsing, and refuse what the tokenizer already shows."""
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    for count in range(1, MAX_TOKENS + 2):
        try:
            tok = next(tokens)
        except StopIteration:
            return
        except (tokenize.TokenError, SyntaxError) as exc:
            raise ExpressionError(f"syntax error: {exc.args[0]}") from None
        if count > MAX_TOKENS:
            raise ExpressionError(f"the expression has more than {MAX_TOKENS} tokens")
        if tok.type == tokenize.ERRORTOKEN and not tok.string.isspace():
            raise ExpressionError(
                f"unexpected character {tok.string!r} at column {tok.start[1] + 1}"
            )
        if tok.type == tokenize.STRING and not tok.string.startswith(("'", '"')):
            raise ExpressionError(
                f"string prefixes (f-strings, bytes, raw) are not allowed: {tok.string}"
            )


def _check_shape(tree: ast.Expression) -> None:
    """Bound the node count and the nesting depth without recursion."""
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ExpressionError(f"the expression has more than {MAX_NODES} parts")
        if depth > MAX_DEPTH:
            raise ExpressionError(f"the expression is nested more than {MAX_DEPTH} levels deep")
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                stack.append((child, depth + 1))


# --- the compiler -----------------------------------------------------------------------------


class _Compiler:
    def __init__(self, known: Mapping[str, str], names: set[str], text: str) -> None:
        self.known = known
        self.names = names
        self.text = text

    def source_of(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.text, node) or ast.unparse(node)

    def clauses(self, node: ast.expr) -> tuple[Clause, ...]:
        parts = node.values if isinstance(node, ast.BoolOp) else [node]
        out = []
        for part in parts:
            used: set[str] = set()
            c = _Compiler(self.known, used, self.text).compile(part)
            out.append(Clause(self.source_of(part), tuple(sorted(used)), c.fn, c.cost, c.guard))
        return tuple(out)

    def compile(self, node: ast.AST) -> _Node:
        if isinstance(node, ast.Constant):
            return _constant(node.value)
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.BoolOp):
            return self.boolop(node)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, ast.BinOp):
            return self.binop(node)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.IfExp):
            return self.ifexp(node)
        raise ExpressionError(_refusal(node))

    # names and constants

    def name(self, name: str) -> _Node:
        if name in _CONSTANT_NAMES:
            return _constant(_CONSTANT_NAMES[name])
        if name.startswith("_"):
            raise ExpressionError(f"names starting with '_' are not allowed: {name!r}")
        kind = self.known.get(name)
        if kind is None:
            close = difflib.get_close_matches(name, list(self.known), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ExpressionError(f"unknown name {name!r}{hint}")
        self.names.add(name)

        def get(env: Env) -> Any:
            try:
                return env[name]
            except KeyError:
                return None

        return _Node(get, kind, name=name)

    # boolean logic

    def boolop(self, node: ast.BoolOp) -> _Node:
        parts = [self.compile(v) for v in node.values]
        kind = _join(*(p.type for p in parts), what=f"'{_op_text(node.op)}'")
        fns = [p.fn for p in parts]
        cost = sum(p.cost for p in parts) + 1
        if isinstance(node.op, ast.And):
            return _Node(_and(fns), kind, cost=cost)
        return _Node(_or(fns), kind, cost=cost)

    def unary(self, node: ast.UnaryOp) -> _Node:
        operand = self.compile(node.operand)
        f = operand.fn
        if isinstance(node.op, ast.Not):
            return _Node(lambda env: not f(env), BOOL, cost=operand.cost + 1)
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            self.need_number(operand, node.operand, "a sign")
            if operand.const:
                value = -operand.value if isinstance(node.op, ast.USub) else operand.value
                return _constant(value)
            if isinstance(node.op, ast.UAdd):
                return operand

            def neg(env: Env) -> Any:
                v = f(env)
                return None if v is None else -v

            return _Node(neg, NUMBER, cost=operand.cost + 1)
        raise ExpressionError(f"operator {_op_text(node.op)} is not allowed")

    # arithmetic

    def binop(self, node: ast.BinOp) -> _Node:
        make = _ARITHMETIC.get(type(node.op))
        if make is None:
            raise ExpressionError(f"operator {_op_text(node.op)} is not allowed")
        left, right = self.compile(node.left), self.compile(node.right)
        self.need_number(left, node.left, "arithmetic")
        self.need_number(right, node.right, "arithmetic")
        return _Node(make(left.fn, right.fn), NUMBER, cost=left.cost + right.cost + 2)

    def need_number(self, operand: _Node, node: ast.AST, what: str) -> None:
        if operand.type not in (NUMBER, NONE):
            raise ExpressionError(
                f"{what} needs numbers: {self.source_of(node)} is {_ARTICLE[operand.type]}"
            )

    # comparisons

    def compare(self, node: ast.Compare) -> _Node:
        operands = [node.left, *node.comparators]
        compiled: list[_Node] = []
        for i, (op, a, b) in enumerate(zip(node.ops, operands, operands[1:], strict=False)):
            if i == 0:
                compiled.append(self.compile(a))
            if isinstance(op, (ast.In, ast.NotIn)):
                compiled.append(self.collection(b, compiled[-1], a))
            elif type(op) in _COMPARE:
                right = self.compile(b)
                left = compiled[-1]
                if _clash(left.type, right.type):
                    raise ExpressionError(
                        f"cannot compare {self.source_of(a)} ({_ARTICLE[left.type]}) with "
                        f"{self.source_of(b)} ({_ARTICLE[right.type]})"
                    )
                compiled.append(right)
            else:
                raise ExpressionError(f"comparison {_op_text(op)} is not allowed")
        if len(node.ops) == 1:
            special = _specialised_compare(type(node.ops[0]), compiled[0], compiled[1])
            if special is not None:
                fn, guard = special
                return _Node(fn, BOOL, cost=1, guard=guard)
        steps = [(_COMPARE[type(op)], c.fn) for op, c in zip(node.ops, compiled[1:], strict=True)]
        cost = sum(c.cost for c in compiled) + 2 * len(steps)
        return _Node(_chain(compiled[0].fn, steps), BOOL, cost=cost)

    def collection(self, node: ast.AST, left: _Node, left_node: ast.AST) -> _Node:
        if not isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            raise ExpressionError(
                f"after 'in' comes a list of constants like ['a', 'b'], not {self.source_of(node)}"
            )
        if len(node.elts) > MAX_LIST_ITEMS:
            raise ExpressionError(f"a list after 'in' holds at most {MAX_LIST_ITEMS} items")
        items = []
        for elt in node.elts:
            item = self.compile(elt)
            if not item.const:
                raise ExpressionError(
                    f"a list after 'in' holds only constants, not {self.source_of(elt)}"
                )
            if _clash(left.type, item.type):
                raise ExpressionError(
                    f"cannot look for {self.source_of(left_node)} ({_ARTICLE[left.type]}) "
                    f"among {self.source_of(elt)} ({_ARTICLE[item.type]})"
                )
            items.append(item.value)
        frozen = frozenset(items)
        return _Node(lambda env: frozen, ANY, const=True, value=frozen, cost=0)

    # functions and conditionals

    def call(self, node: ast.Call) -> _Node:
        if not isinstance(node.func, ast.Name):
            raise ExpressionError(
                f"only plain function calls are allowed, not {self.source_of(node.func)}(...)"
            )
        name = node.func.id
        spec = FUNCTIONS.get(name)
        if spec is None:
            raise ExpressionError(
                f"function {name!r} is not allowed; allowed: {', '.join(sorted(FUNCTIONS))}"
            )
        if node.keywords:
            raise ExpressionError(f"{name}() takes no keyword arguments")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise ExpressionError(f"{name}() takes no starred arguments")
        if not spec.min_args <= len(node.args) <= spec.max_args:
            raise ExpressionError(
                f"{name}() takes {spec.min_args} to {spec.max_args} arguments, got {len(node.args)}"
            )
        args = [self.compile(a) for a in node.args]
        fns = [a.fn for a in args]
        cost = sum(a.cost for a in args) + 3
        if name == "coalesce":
            kind = _join(*(a.type for a in args), what="coalesce()")
            return _Node(_coalesce(fns), kind, cost=cost)
        for arg, arg_node in zip(args, node.args, strict=True):
            self.need_number(arg, arg_node, f"{name}()")
        if name == "days_since" and len(fns) == 1:
            now = self.name("event_ts") if "event_ts" in self.known else _constant(None)
            fns.append(now.fn)
        return _Node(_apply(spec.fn, fns), NUMBER, cost=cost)

    def ifexp(self, node: ast.IfExp) -> _Node:
        test, body, orelse = (self.compile(n) for n in (node.test, node.body, node.orelse))
        t, b, o = test.fn, body.fn, orelse.fn
        cost = test.cost + max(body.cost, orelse.cost) + 1
        return _Node(
            lambda env: b(env) if t(env) else o(env),
            _join(body.type, orelse.type, what="'if ... else'"),
            cost=cost,
        )


# --- helpers: constants, types, closures ------------------------------------------------------


def _constant(value: object) -> _Node:
    if isinstance(value, bool):
        kind = BOOL
    elif isinstance(value, (int, float)):
        if not math.isfinite(value) or abs(value) > MAX_NUMBER:
            raise ExpressionError(f"number {value!r} is out of range (at most {MAX_NUMBER:g})")
        value = float(value)  # arithmetic stays in floats: it overflows to inf, never raises
        kind = NUMBER
    elif isinstance(value, str):
        kind = STRING
    elif value is None:
        kind = NONE
    else:
        raise ExpressionError(f"constant {value!r} is not allowed")
    return _Node(lambda env: value, kind, const=True, value=value, cost=0)


def _join(*kinds: str, what: str) -> str:
    """The type of a value that is one of ``kinds``; a string never mixes with anything else.

    ``ANY`` is then a number or a bool: comparing it never fails at run time.
    """
    real = {k for k in kinds if k != NONE}
    if not real:
        return NONE
    if len(real) == 1:
        return real.pop()
    if STRING in real:
        raise ExpressionError(f"{what} mixes a string with {_ARTICLE[sorted(real - {STRING})[0]]}")
    return ANY


def _clash(a: str, b: str) -> bool:
    """A string never equals or orders against a number or a bool: refuse it at load."""
    return (a == STRING and b in (NUMBER, BOOL)) or (b == STRING and a in (NUMBER, BOOL))


def _refusal(node: ast.AST) -> str:
    what = {
        ast.Attribute: "attribute access (x.y)",
        ast.Subscript: "subscripts (x[i])",
        ast.Lambda: "lambda",
        ast.NamedExpr: "assignment (:=)",
        ast.JoinedStr: "f-strings",
        ast.FormattedValue: "f-strings",
        ast.Starred: "starred arguments (*x)",
        ast.ListComp: "comprehensions",
        ast.SetComp: "comprehensions",
        ast.DictComp: "comprehensions",
        ast.GeneratorExp: "comprehensions",
        ast.Dict: "dictionaries",
        ast.List: "a list outside 'in [...]'",
        ast.Tuple: "a tuple outside 'in (...)'",
        ast.Set: "a set outside 'in {...}'",
        ast.Await: "await",
        ast.Yield: "yield",
        ast.YieldFrom: "yield",
        ast.Slice: "slices",
    }.get(type(node), type(node).__name__)
    return f"{what} is not allowed in a condition"


def _op_text(op: ast.AST) -> str:
    return {
        ast.And: "and",
        ast.Or: "or",
        ast.Pow: "**",
        ast.FloorDiv: "//",
        ast.MatMult: "@",
        ast.LShift: "<<",
        ast.RShift: ">>",
        ast.BitAnd: "&",
        ast.BitOr: "|",
        ast.BitXor: "^",
        ast.Invert: "~",
        ast.Is: "is",
        ast.IsNot: "is not",
    }.get(type(op), type(op).__name__)


def _and(fns: list[Fn]) -> Fn:
    if len(fns) == 2:
        a, b = fns
        return lambda env: a(env) and b(env)
    if len(fns) == 3:
        a, b, c = fns
        return lambda env: a(env) and b(env) and c(env)
    if len(fns) == 4:
        a, b, c, d = fns
        return lambda env: a(env) and b(env) and c(env) and d(env)
    parts = tuple(fns)

    def every(env: Env) -> Any:
        value: Any = True
        for p in parts:
            value = p(env)
            if not value:
                return value
        return value

    return every


def _or(fns: list[Fn]) -> Fn:
    if len(fns) == 2:
        a, b = fns
        return lambda env: a(env) or b(env)
    if len(fns) == 3:
        a, b, c = fns
        return lambda env: a(env) or b(env) or c(env)
    parts = tuple(fns)

    def some(env: Env) -> Any:
        value: Any = False
        for p in parts:
            value = p(env)
            if value:
                return value
        return value

    return some


def _arith(op: Callable[[Any, Any], Any]) -> Callable[[Fn, Fn], Fn]:
    def make(left: Fn, right: Fn) -> Fn:
        def arith(env: Env) -> Any:
            a = left(env)
            if a is None:
                return None
            b = right(env)
            if b is None:
                return None
            return op(a, b)

        return arith

    return make


def _div(a: float, b: float) -> float | None:
    return None if b == 0 else a / b


def _mod(a: float, b: float) -> float | None:
    return None if b == 0 else a % b


_ARITHMETIC: dict[type[ast.operator], Callable[[Fn, Fn], Fn]] = {
    ast.Add: _arith(lambda a, b: a + b),
    ast.Sub: _arith(lambda a, b: a - b),
    ast.Mult: _arith(lambda a, b: a * b),
    ast.Div: _arith(_div),
    ast.Mod: _arith(_mod),
}


def _lt(a: Any, b: Any) -> bool:
    return a is not None and b is not None and bool(a < b)


def _le(a: Any, b: Any) -> bool:
    return a is not None and b is not None and bool(a <= b)


def _gt(a: Any, b: Any) -> bool:
    return a is not None and b is not None and bool(a > b)


def _ge(a: Any, b: Any) -> bool:
    return a is not None and b is not None and bool(a >= b)


_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: bool(a == b),
    ast.NotEq: lambda a, b: bool(a != b),
    ast.Lt: _lt,
    ast.LtE: _le,
    ast.Gt: _gt,
    ast.GtE: _ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_FLIP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.Gt,
    ast.LtE: ast.GtE,
    ast.Gt: ast.Lt,
    ast.GtE: ast.LtE,
    ast.Eq: ast.Eq,
    ast.NotEq: ast.NotEq,
}


def _chain(first: Fn, steps: list[tuple[Callable[[Any, Any], bool], Fn]]) -> Fn:
    if len(steps) == 1:
        (op, right), left = steps[0], first
        return lambda env: op(left(env), right(env))

    def chain(env: Env) -> bool:
        a = first(env)
        for op, right in steps:
            b = right(env)
            if not op(a, b):
                return False
            a = b
        return True

    return chain


def _specialised_compare(
    op: type[ast.cmpop], left: _Node, right: _Node
) -> tuple[Fn, Guard | None] | None:
    """The common shape ``name <op> constant`` (either way round) as one closure, and a guard.

    The guard's test is a ``functools.partial`` of an ``operator`` function (no Python frame):
    ``value > c`` is ``operator.lt(c, value)``. Only shapes where a missing value fails the
    test get one (``!=`` and ``not in`` hold for a missing value).
    """
    if left.const and right.name is not None and op in _FLIP:
        left, right, op = right, left, _FLIP[op]
    if left.name is None or not right.const:
        return None
    name, c = left.name, right.value
    if op in (ast.In, ast.NotIn):
        guard = (name, partial(operator.contains, c)) if op is ast.In and None not in c else None
        return _name_in(name, c, op is ast.In), guard
    if op in (ast.Eq, ast.NotEq):
        guard = (name, partial(operator.eq, c)) if op is ast.Eq and c is not None else None
        return _name_eq(name, c, op is ast.Eq), guard
    if c is None:
        return (lambda env: False), None
    return _NAME_ORDERED[op](name, c), (name, partial(_GUARD_ORDERED[op], c))


def _name_in(name: str, items: frozenset[Any], positive: bool) -> Fn:
    if positive:

        def isin(env: Env) -> Any:
            try:
                return env[name] in items
            except KeyError:
                return None in items

        return isin

    def notin(env: Env) -> Any:
        try:
            return env[name] not in items
        except KeyError:
            return None not in items

    return notin


def _name_eq(name: str, c: Any, positive: bool) -> Fn:
    if positive:

        def eq(env: Env) -> Any:
            try:
                return env[name] == c
            except KeyError:
                return c is None

        return eq

    def ne(env: Env) -> Any:
        try:
            return env[name] != c
        except KeyError:
            return c is not None

    return ne


def _name_gt(name: str, c: Any) -> Fn:
    def gt(env: Env) -> Any:
        try:
            return env[name] > c
        except (KeyError, TypeError):
            return _ordered_missing(env, name)

    return gt


def _name_ge(name: str, c: Any) -> Fn:
    def ge(env: Env) -> Any:
        try:
            return env[name] >= c
        except (KeyError, TypeError):
            return _ordered_missing(env, name)

    return ge


def _name_lt(name: str, c: Any) -> Fn:
    def lt(env: Env) -> Any:
        try:
            return env[name] < c
        except (KeyError, TypeError):
            return _ordered_missing(env, name)

    return lt


def _name_le(name: str, c: Any) -> Fn:
    def le(env: Env) -> Any:
        try:
            return env[name] <= c
        except (KeyError, TypeError):
            return _ordered_missing(env, name)

    return le


def _ordered_missing(env: Env, name: str) -> bool:
    """An ordered comparison with a missing value is false; with a wrong type it is an error."""
    value = env.get(name)
    if value is None:
        return False
    raise TypeError(f"{name} holds {value!r}, which cannot be ordered against a number")


# value <op> c  is  reversed-op(c, value)
_GUARD_ORDERED: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Gt: operator.lt,
    ast.GtE: operator.le,
    ast.Lt: operator.gt,
    ast.LtE: operator.ge,
}
_NAME_ORDERED: dict[type[ast.cmpop], Callable[[str, Any], Fn]] = {
    ast.Gt: _name_gt,
    ast.GtE: _name_ge,
    ast.Lt: _name_lt,
    ast.LtE: _name_le,
}


def _apply(fn: Callable[..., Any], args: list[Fn]) -> Fn:
    if len(args) == 1:
        (a,) = args

        def one(env: Env) -> Any:
            x = a(env)
            return None if x is None else fn(x)

        return one
    if len(args) == 2:
        a, b = args

        def two(env: Env) -> Any:
            x, y = a(env), b(env)
            return None if x is None or y is None else fn(x, y)

        return two
    parts = tuple(args)

    def many(env: Env) -> Any:
        values = [p(env) for p in parts]
        return None if None in values else fn(*values)

    return many


def _coalesce(args: list[Fn]) -> Fn:
    parts = tuple(args)

    def coalesce(env: Env) -> Any:
        for p in parts:
            value = p(env)
            if value is not None:
                return value
        return None

    return coalesce
