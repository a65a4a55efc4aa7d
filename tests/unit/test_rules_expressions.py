"""The rule expression language: what it computes, what it refuses, and that no text breaks it."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules import expressions
from rules.expressions import ExpressionError, compile_expression

KNOWN = {
    "aum": "number",
    "aum_peak_30d": "number",
    "aum_drop_from_peak_30d_pct": "number",
    "transfer_out_other_bank_7d": "number",
    "tier": "string",
    "event_page": "string",
    "event_amount": "number",
    "event_ts": "number",
    "cold_churn_risk": "bool",
    "score_churn_risk": "number",
    "profile_opted_out": "bool",
}
ENV: dict[str, Any] = {
    "aum": 130000.0,
    "aum_peak_30d": 200000.0,
    "aum_drop_from_peak_30d_pct": 35.0,
    "transfer_out_other_bank_7d": 0.0,
    "tier": "basic",
    "event_page": None,  # a transaction: no page
    "event_amount": 5000.0,
    "event_ts": 86400.0 * 10,
    "cold_churn_risk": False,
    "score_churn_risk": 0.42,
    "profile_opted_out": False,
}


def run(source: str, env: dict[str, Any] | None = None) -> Any:
    expr = compile_expression(source, KNOWN)
    env = ENV if env is None else env
    value = expr.evaluate(env)
    # the evaluator's fast path (guard first, conjuncts by cost) must agree on the truth
    assert bool(expr.evaluate_fast(env)) == bool(value), source
    return value


# --- what it computes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("aum_drop_from_peak_30d_pct >= 30", True),
        ("aum_drop_from_peak_30d_pct > 35", False),
        ("30 <= aum_drop_from_peak_30d_pct", True),
        ("20 < aum_drop_from_peak_30d_pct < 40", True),
        ("aum == 130000 and tier == 'basic'", True),
        ("aum != 130000 or tier != 'basic'", False),
        ("tier in ['basic', 'affluent']", True),
        ("tier not in ('basic', 'affluent')", False),
        ("not cold_churn_risk and score_churn_risk > 0.4", True),
        ("aum / aum_peak_30d < 0.7", True),
        ("aum_peak_30d - aum == 70000", True),
        ("aum * 2 + 1 == 260001", True),
        ("aum % 7 == 130000 % 7", True),
        ("-aum < -100000", True),
        ("+aum > 0", True),
        ("pct_change(aum_peak_30d, aum) == -35", True),
        ("abs(pct_change(aum_peak_30d, aum)) >= 35", True),
        ("max(aum, aum_peak_30d) == 200000", True),
        ("min(aum, aum_peak_30d, 1000) == 1000", True),
        ("round(score_churn_risk, 1) == 0.4", True),
        ("clamp(score_churn_risk * 10, 0, 1) == 1", True),
        ("days_since(event_ts - 86400 * 3) == 3", True),
        ("days_since(0, 86400) == 1", True),
        ("(aum if tier == 'basic' else 0) > 0", True),
        ("true and not false", True),
        ("True and not False", True),
        ("tier == 'basic'\n  and aum > 1", True),  # several YAML lines
    ],
)
def test_it_computes_what_it_says(source: str, expected: bool) -> None:
    assert run(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("event_page == 'account_closure'", False),
        ("event_page != 'account_closure'", True),
        ("event_page == none", True),
        ("event_page != none", False),
        ("event_page in ['a', 'b']", False),
        ("event_page not in ['a', 'b']", True),
        ("event_page > 'a'", False),
        ("event_page < 'a'", False),
        ("coalesce(event_page, 'none') == 'none'", True),
    ],
)
def test_a_missing_value_fails_comparisons_and_equals_only_none(
    source: str, expected: bool
) -> None:
    assert run(source) == expected


def test_missing_values_flow_through_arithmetic_and_functions() -> None:
    env = {**ENV, "event_amount": None}
    assert run("event_amount * 2 > 0", env) is False
    assert run("event_amount * 2 <= 0", env) is False
    assert run("max(event_amount, 1) > 0", env) is False
    assert run("coalesce(event_amount, 0) == 0", env) is True
    # a name absent from the environment is missing too
    assert run("aum > 1", {}) is False
    assert run("event_page == none", {}) is True


def test_division_by_zero_is_missing_so_the_comparison_is_false() -> None:
    env = {**ENV, "aum_peak_30d": 0.0}
    assert run("aum / aum_peak_30d > 0.5", env) is False
    assert run("aum / aum_peak_30d <= 0.5", env) is False
    assert run("aum % aum_peak_30d == 0", env) is False
    assert run("pct_change(aum_peak_30d, aum) < 0", env) is False


def test_the_names_read_and_the_top_level_clauses_are_known() -> None:
    expr = compile_expression(
        "aum_drop_from_peak_30d_pct >= 30 and (tier == 'basic' or aum > 500000)", KNOWN
    )
    assert expr.names == {"aum_drop_from_peak_30d_pct", "tier", "aum"}
    assert [c.source for c in expr.clauses] == [
        "aum_drop_from_peak_30d_pct >= 30",
        "tier == 'basic' or aum > 500000",
    ]
    assert expr.held(ENV) == [
        ("aum_drop_from_peak_30d_pct >= 30", {"aum_drop_from_peak_30d_pct": 35.0}),
        ("tier == 'basic' or aum > 500000", {"aum": 130000.0, "tier": "basic"}),
    ]
    # an `or` reports only the alternatives that held
    either = compile_expression("aum > 1 or tier == 'affluent'", KNOWN)
    assert either.held(ENV) == [("aum > 1", {"aum": 130000.0})]


def test_the_cheapest_conjunct_becomes_the_guard() -> None:
    expr = compile_expression(
        "pct_change(aum_peak_30d, aum) < -30 and aum_peak_30d >= 50000", KNOWN
    )
    assert expr.guard is not None and expr.guard[0] == "aum_peak_30d"
    assert expr.guard[1](60000.0) and not expr.guard[1](40000.0)
    # `!=` holds for a missing value, so it cannot be a guard
    assert compile_expression("event_page != 'x'", KNOWN).guard is None
    assert compile_expression("event_page in ['a', none]", KNOWN).guard is None


# --- what it refuses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("aum >", "syntax error"),
        ("(aum > 1", "syntax error"),
        ("aum > 1)", "syntax error"),
        ("aum.__class__", "attribute access"),
        ("tier.upper() == 'X'", "only plain function calls"),
        ("().__class__.__bases__[0].__subclasses__()", "only plain function calls"),
        ("tier[0] == 'b'", "subscripts"),
        ("(lambda: 1)() == 1", "only plain function calls"),
        ("lambda x: x", "lambda"),
        ("[x for x in [1]] == [1]", "comprehensions"),
        ("(x := 5) > 1", "assignment"),
        ("f'{aum}' == '1'", "string prefixes"),
        ("b'x' == b'x'", "string prefixes"),
        ("max(*[1, 2]) > 1", "starred"),
        ("max(aum, key=abs) > 1", "keyword"),
        ("__import__('os')", "not allowed"),
        ("eval('1')", "not allowed"),
        ("open('/etc/passwd')", "not allowed"),
        ("getattr(aum, 'real')", "not allowed"),
        ("__builtins__ == 1", "names starting with '_'"),
        ("_secret > 1", "names starting with '_'"),
        ("aum ** 2 > 1", "operator **"),
        ("aum // 2 > 1", "operator //"),
        ("aum << 2 > 1", "operator <<"),
        ("~aum > 1", "operator ~"),
        ("aum is none", "comparison is"),
        ("{'a': 1} == 1", "dictionaries"),
        ("[1, 2] == [1, 2]", "a list outside"),
        ("aum > 1e400", "out of range"),
        ("aum > 10000000000000000", "out of range"),
        ("1j == aum", "constant"),
        ("... == aum", "constant"),
        ("aum in tier", "after 'in' comes a list"),
        ("tier in [aum, 1]", "only constants"),
        ("tier > 3", "cannot compare tier (a string) with 3 (a number)"),
        ("3 == tier", "cannot compare"),
        ("tier == profile_opted_out", "cannot compare"),
        ("tier in ['basic', 3]", "cannot look for tier (a string) among 3 (a number)"),
        ("tier + 'x' == 'basicx'", "arithmetic needs numbers: tier is a string"),
        ("profile_opted_out * 2 > 1", "arithmetic needs numbers"),
        ("abs(tier) > 1", "abs() needs numbers"),
        ("max(aum) > 1", "takes 2 to 8 arguments"),
        ("coalesce(aum, 'x') == 1", "coalesce() mixes a string with a number"),
        ("(tier or aum) > 1", "'or' mixes a string"),
        ("(tier if aum > 1 else 0) == 0", "'if ... else' mixes a string"),
        ("unknown_feature > 1", "unknown name 'unknown_feature'"),
        ("aum_drop_pct >= 30", "did you mean 'aum_drop_from_peak_30d_pct'"),
        ("aum > 1 $ 2", "unexpected character '$'"),
        ("aum > 1\x00", "unexpected character"),
        ("await aum", "await is not allowed"),
        ("yield aum", "syntax error"),
        ("import os", "syntax error"),
        ("aum > 1; aum < 2", "syntax error"),
    ],
)
def test_it_refuses_with_a_reason(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression(source, KNOWN)
    assert message in str(info.value)


def test_size_is_bounded() -> None:
    with pytest.raises(ExpressionError, match="longer than"):
        compile_expression("aum > 1 and " * 200 + "aum > 1", KNOWN)
    with pytest.raises(ExpressionError, match="tokens"):
        compile_expression("+".join(["1"] * 300) + " > aum", KNOWN)
    with pytest.raises(ExpressionError, match="items"):
        compile_expression(f"tier in {[str(i) for i in range(150)]}", KNOWN)


DEEP = 10_000
DEEP_SHAPES = {
    "parentheses": "(" * DEEP + "aum" + ")" * DEEP + " > 1",
    "unary minus": "-" * DEEP + "aum > 1",
    "not": "not " * DEEP + "cold_churn_risk",
    "left-deep sum": " + ".join(["aum"] * DEEP) + " > 1",
    "right-deep power": " ** ".join(["aum"] * DEEP) + " > 1",
    "conditionals": "aum if cold_churn_risk else " * DEEP + "aum > 1",
    "calls": "abs(" * DEEP + "aum" + ")" * DEEP + " > 1",
    "lists": "[" * DEEP + "]" * DEEP,
    "attributes": "aum" + ".real" * DEEP,
    "and chain": " and ".join(["cold_churn_risk"] * DEEP),
    "lambdas": "lambda: " * DEEP + "aum",
}


@pytest.fixture
def no_length_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Lift the character limit, to show the token, node and depth bounds hold by themselves."""
    monkeypatch.setattr(expressions, "MAX_EXPRESSION_CHARS", 10**7)
    yield


@pytest.mark.parametrize("shape", sorted(DEEP_SHAPES))
def test_a_10000_deep_expression_is_refused_cleanly(shape: str) -> None:
    with pytest.raises(ExpressionError):
        compile_expression(DEEP_SHAPES[shape], KNOWN)


@pytest.mark.parametrize("shape", sorted(DEEP_SHAPES))
def test_a_10000_deep_expression_is_refused_before_parsing_without_the_length_limit(
    shape: str, no_length_limit: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def parse_must_not_run(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a 10,000-deep expression reached the parser")

    monkeypatch.setattr(expressions.ast, "parse", parse_must_not_run)
    with pytest.raises(ExpressionError, match="tokens"):
        compile_expression(DEEP_SHAPES[shape], KNOWN)


def test_nesting_is_bounded_by_depth_not_by_parentheses() -> None:
    limit = expressions.MAX_DEPTH
    compile_expression("-" * (limit - 2) + "aum > 1", KNOWN)  # Compare > -... > Name
    with pytest.raises(ExpressionError, match="nested more than"):
        compile_expression("-" * (limit - 1) + "aum > 1", KNOWN)
    with pytest.raises(ExpressionError, match="nested more than"):
        compile_expression("not " * (limit + 5) + "cold_churn_risk", KNOWN)
    assert run("(" * 150 + "aum" + ")" * 150 + " > 1") is True  # parentheses add no depth


def test_deep_but_allowed_expressions_evaluate_without_deep_recursion() -> None:
    # the deepest tree the bounds allow evaluates far from the recursion limit
    text = "not " * (expressions.MAX_DEPTH - 1) + "cold_churn_risk"
    expr = compile_expression(text, KNOWN)
    old, frame, depth = sys.getrecursionlimit(), sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    sys.setrecursionlimit(depth + 2 * expressions.MAX_DEPTH)
    try:
        assert expr.evaluate(ENV) is True  # 31 nots of False
    finally:
        sys.setrecursionlimit(old)


# --- no text breaks it, and no text runs anything ---------------------------------------------

WATCHED = (
    "exec",
    "import",
    "open",
    "os.",
    "subprocess.",
    "socket.",
    "ctypes.",
    "marshal.",
    "pickle.",
    "builtins.input",
    "sys._getframe",
    "object.__",
)
_audit: dict[str, Any] = {"on": False, "seen": []}


def _hook(
    event: str,
    args: tuple[Any, ...],
    audit: dict[str, Any] = _audit,  # bound now: module globals are gone at interpreter exit
    watched: tuple[str, ...] = WATCHED,
) -> None:
    if not audit["on"]:
        return
    if event == "compile":
        # ast.parse of the expression itself, and nothing else, may compile
        if len(args) > 1 and args[1] != "<rule>":
            audit["seen"].append((event, args[1]))
    elif event.startswith(watched):
        audit["seen"].append((event, repr(args)[:80]))


sys.addaudithook(_hook)  # audit hooks cannot be removed; this one only looks while "on"

VOCABULARY = [
    *KNOWN,
    "unknown",
    "__import__",
    "__class__",
    "__builtins__",
    "_x",
    "os",
    "eval",
    "exec",
    "open",
    "getattr",
    "lambda",
    "yield",
    "await",
    "import",
    "for",
    "if",
    "else",
    "in",
    "not",
    "and",
    "or",
    "is",
    "true",
    "none",
    "True",
    "None",
    "abs",
    "min",
    "max",
    "pct_change",
    "days_since",
    "coalesce",
    "clamp",
    "round",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    ".",
    ":=",
    "*",
    "**",
    "+",
    "-",
    "/",
    "//",
    "%",
    "@",
    "<",
    "<=",
    ">",
    ">=",
    "==",
    "!=",
    "~",
    "&",
    "|",
    "^",
    "<<",
    ">>",
    "'basic'",
    '"x"',
    "f'{aum}'",
    "b'x'",
    "0",
    "1",
    "30",
    "0.5",
    "1e308",
    "1e999",
    "-1",
    "\\",
    "#",
    ";",
    "\n",
    "\t",
    "\x00",
    "...",
    "`",
    "$",
    "?",
]


def _well_typed_env(draw_values: list[float]) -> dict[str, Any]:
    env: dict[str, Any] = {}
    for i, (name, kind) in enumerate(sorted(KNOWN.items())):
        v = draw_values[i % len(draw_values)]
        if i % 5 == 4:
            env[name] = None
        elif kind == "number":
            env[name] = v
        elif kind == "string":
            env[name] = ["basic", "affluent", "", "account_closure"][i % 4]
        else:
            env[name] = v > 0
    return env


def _check_text(text: str, values: list[float]) -> None:
    _audit["on"], _audit["seen"] = True, []
    try:
        try:
            expr = compile_expression(text, KNOWN)
        except ExpressionError:
            return
        for env in (_well_typed_env(values), {}):
            result = expr.evaluate(env)  # never raises on a well-typed environment
            fast = expr.evaluate_fast(env)
            assert bool(result) == bool(fast), (text, env)
    finally:
        _audit["on"] = False
        assert _audit["seen"] == [], (text, _audit["seen"])


def test_the_watch_would_see_code_being_run() -> None:
    """The fuzz tests' "runs nothing" check is not vacuous: exec, eval and imports are seen."""
    _audit["on"], _audit["seen"] = True, []
    try:
        exec("x = 1", {})
        with pytest.raises(ModuleNotFoundError):
            __import__("no_such_module_for_the_watch")
    finally:
        _audit["on"] = False
    assert {event for event, _ in _audit["seen"]} >= {"exec", "import"}
    _audit["seen"] = []


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=300), values=st.lists(finite, min_size=1, max_size=5))
def test_random_text_never_breaks_the_compiler_and_runs_nothing(
    text: str, values: list[float]
) -> None:
    _check_text(text, values)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tokens=st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=40),
    sep=st.sampled_from([" ", ""]),
    values=st.lists(finite, min_size=1, max_size=5),
)
def test_random_token_soup_never_breaks_the_compiler_and_runs_nothing(
    tokens: list[str], sep: str, values: list[float]
) -> None:
    _check_text(sep.join(tokens), values)


# A grammar of valid expressions, to exercise evaluation (not only refusal) on random input.
NUM_NAMES = sorted(n for n, k in KNOWN.items() if k == "number")


@st.composite
def numbers(draw: st.DrawFn, depth: int = 0) -> str:
    leaf = st.one_of(
        st.sampled_from(NUM_NAMES),
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda v: repr(round(v, 3))),
    )
    if depth > 2 or draw(st.booleans()):
        return draw(leaf)
    a, b = draw(numbers(depth + 1)), draw(numbers(depth + 1))
    form = draw(st.sampled_from(["+", "-", "*", "/", "%", "min", "max", "pct", "abs", "neg"]))
    if form in ("min", "max"):
        return f"{form}({a}, {b})"
    if form == "pct":
        return f"pct_change({a}, {b})"
    if form == "abs":
        return f"abs({a})"
    if form == "neg":
        return f"-({a})"
    return f"({a} {form} {b})"


@st.composite
def conditions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 1 or draw(st.booleans()):
        kind = draw(st.sampled_from(["cmp", "str", "in", "bool"]))
        if kind == "cmp":
            op = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
            return f"{draw(numbers())} {op} {draw(numbers())}"
        if kind == "str":
            op = draw(st.sampled_from(["==", "!="]))
            return f"tier {op} {draw(st.sampled_from(['basic', 'x']))!r}"
        if kind == "in":
            return f"event_page {draw(st.sampled_from(['in', 'not in']))} ['account_closure', '']"
        return draw(st.sampled_from(["cold_churn_risk", "not profile_opted_out"]))
    parts = draw(st.lists(conditions(depth + 1), min_size=2, max_size=3))
    return "(" + f" {draw(st.sampled_from(['and', 'or']))} ".join(parts) + ")"


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=conditions(), values=st.lists(finite, min_size=1, max_size=5))
def test_valid_random_conditions_evaluate_and_agree_with_the_fast_path(
    text: str, values: list[float]
) -> None:
    try:
        expr = compile_expression(text, KNOWN)
    except ExpressionError as exc:
        assert any(w in str(exc) for w in ("longer than", "tokens", "parts", "nested")), exc
        return
    env = _well_typed_env(values)
    result = expr.evaluate(env)
    assert bool(result) == bool(expr.evaluate_fast(env))
    assert not isinstance(result, float) or not math.isnan(result)
