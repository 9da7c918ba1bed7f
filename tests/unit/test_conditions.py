"""jobflow.conditions: legacy literals, CEL evaluation over the documented context (phases,
output parameters, flow name), errors (syntax, missing key, non-bool, unknown variable or
function), the bounded compile cache, build_context from status entries, static step-reference
extraction, and the limits for hostile input: every class of expression that crashed, panicked,
exhausted memory or held the previous engine for seconds is refused with a ConditionError and a
stable code (length, nesting, node count, cost), and fuzzed text never raises anything else."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobflow import condition_engine, condition_text, conditions

CTX = conditions.build_context(
    "nightly-7",
    [
        {"name": "build", "phase": "Succeeded", "outputs": {"parameters": {"version": "1.2"}}},
        {"name": "test-all", "phase": "Failed"},
        {"name": "lint"},
    ],
)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("", True),
        ("always", True),
        ("true", True),
        (" true ", True),
        ("never", False),
        ("false", False),
    ],
)
def test_literals(expression: str, expected: bool) -> None:
    assert conditions.literal_value(expression) is expected
    assert conditions.evaluate(expression, {}) is expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("steps['build'].phase == 'Succeeded'", True),
        ("steps.build.phase == 'Failed'", False),
        ("steps['test-all'].phase == 'Failed'", True),
        ("steps['lint'].phase == 'Pending'", True),
        ("steps['build'].outputs.parameters['version'] == '1.2'", True),
        ("'version' in steps['build'].outputs.parameters", True),
        ("flow.name.startsWith('nightly')", True),
        ("steps['build'].phase == 'Succeeded' && steps['test-all'].phase != 'Failed'", False),
    ],
)
def test_cel(expression: str, expected: bool) -> None:
    conditions.compile_expression(expression)
    assert conditions.evaluate(expression, CTX) is expected


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("steps['build'].phase ==", "Syntax error"),
        ("steps['build'].outputs.parameters['nope'] == 'x'", "nope"),
        ("1 + 1", "not a bool"),
        ("missing == 1", "missing"),
    ],
)
def test_errors_are_condition_errors(expression: str, fragment: str) -> None:
    with pytest.raises(conditions.ConditionError) as err:
        conditions.evaluate(expression, CTX)
    assert fragment in str(err.value)


def test_syntax_error_at_compile() -> None:
    with pytest.raises(conditions.ConditionError):
        conditions.compile_expression("steps[")
    conditions.compile_expression("never")  # literals never reach the engine


def test_compiled_once() -> None:
    expression = "steps['build'].phase == 'Succeeded' || flow.name == 'cache-probe'"
    conditions.evaluate(expression, CTX)
    before = conditions._cache.hits
    conditions.evaluate(expression, CTX)
    assert conditions._cache.hits == before + 1


def test_no_python_eval() -> None:
    with pytest.raises(conditions.ConditionError):
        conditions.evaluate("__import__('os').system('true') == 0", CTX)


@pytest.mark.parametrize(
    ("expression", "steps", "dynamic"),
    [
        ("steps['a'].phase == 'x' && steps.b.phase == 'y'", ("a", "b"), False),
        ('steps["a-b"].outputs.parameters["p"] == "steps[\'z\']"', ("a-b",), False),
        ("steps[flow.name].phase == 'x'", (), True),
        ("steps.exists(s, s == 'a')", (), True),
        ("{'steps': 1}.steps == 1", (), False),
        ("always", (), False),
        ("steps['a'].phase == 'x' || steps['a'].phase == 'y'", ("a",), False),
    ],
)
def test_referenced_steps(expression: str, steps: tuple[str, ...], dynamic: bool) -> None:
    refs = conditions.referenced_steps(expression)
    assert refs.steps == steps
    assert refs.is_dynamic is dynamic


TRIPLE = "'" * 3


@pytest.mark.parametrize(
    ("expression", "code"),
    [
        # The classes that crashed, stalled or exhausted the previous engine (see
        # docs/conditions.md), each refused before or by the parser with a readable reason.
        ("flow" + ".a" * 20000 + " == 1", "when-too-long"),  # SIGSEGV (native stack)
        ("flow" + ".a" * 1000 + " == 1", "when-too-complex"),  # same shape, under 4 KiB
        ("flow" + ".a" * 40 + " == 1", "invalid-when"),  # the parser's own depth limit
        ("x-" * 50000 + "x", "when-too-long"),  # SIGSEGV
        ("1-" * 1000 + "1 == 0", "invalid-when"),  # parser depth: refused, not a crash
        ("true && " + " " * 70000 + "(", "when-too-long"),  # PanicException past col 65535
        ("true && " + " " * 4000 + "(", "invalid-when"),
        ("é" * 20000, "when-too-long"),  # quadratic parser memory (1.5 GB)
        ("é" * 2000, "invalid-when"),
        ("'" + "é" * 2000 + "' == flow.name", None),  # non-ASCII in a string is fine
        ("(" * 17 + "true" + ")" * 17, "when-too-deep"),
        ("[" * 40 + "]" * 40 + " == []", "when-too-deep"),
        ("(" * 16 + "true" + ")" * 16, None),
        # 10^6 iterations of nested map: refused by the cost estimate, not run for seconds.
        (
            "size(" + "[0,1,2,3,4,5,6,7,8,9].map(a, " * 6 + "1" + ")" * 6 + ") > 0",
            "when-too-costly",
        ),
        ("size([" + ",".join(["1"] * 1500) + "].map(v, v)) > 0", "when-too-costly"),
        ("[[1,2,3]].exists(a, (a+a+a+a+a+a+a+a).map(v, v).size() > 1)", "when-too-costly"),
        ("['a', 'b'].exists(x, flow.name == x)", None),
        ("['a', 'b'].exists(x, flow.name == x) || [1, 2].all(n, n > 0)", None),
        ("env() == 1", "when-unknown-function"),
        ("now() > timestamp('2020-01-01T00:00:00Z')", "when-unknown-function"),
        ("'a'.repeat(1000000) == ''", "when-unknown-function"),
        ("steps['a'].phase + 1 == 2", "invalid-when"),  # type-checked: string + int
        ("steps['a'].phse == 'Succeeded'", "when-unknown-field"),  # no such field of a step
        ("flow.nme == 'x'", "when-unknown-field"),  # no such field of the flow
        ("steps['a'].phase", "when-not-bool"),  # a string, known at admission
        ("1 + 1", "when-not-bool"),
        ("flow.name", "when-not-bool"),
        ("size(steps['a'].outputs.parameters['x'] + flow.name) > 1", None),
        ("b'\\xff' == b'\\xff'", None),
        (TRIPLE * 1365, "invalid-when"),
        ("'" * 4096, "invalid-when"),
        ("\ud800 == 1", "invalid-when"),  # a lone surrogate cannot reach the engine
        ("'\x00\x1b[2J' + ", "invalid-when"),  # control characters are escaped in the message
    ],
)
def test_hostile_expressions_are_refused(expression: str, code: str | None) -> None:
    if code is None:
        conditions.check(expression, max_collection=3)
        return
    with pytest.raises(conditions.ConditionError) as err:
        conditions.check(expression, max_collection=3)
    assert err.value.code == code, str(err.value)
    assert str(err.value).isprintable()  # one readable line, no caret diagram or backtrace


def test_limits_are_checked_before_compiling() -> None:
    before = len(conditions._cache)
    for expression in ("x" * (condition_text.MAX_LENGTH + 1), "(" * 40 + "x" + ")" * 40):
        with pytest.raises(conditions.ConditionError):
            conditions.compile_expression(expression)
    assert len(conditions._cache) == before


def test_cost_grows_with_the_context() -> None:
    expression = "steps['a'].outputs.parameters.exists(k, k.startsWith('x'))"
    conditions.check(expression, max_collection=10)
    with pytest.raises(conditions.ConditionError) as err:
        conditions.check(expression, max_collection=100_000)
    assert err.value.code == "when-too-costly"


def test_evaluation_checks_the_cost_of_the_actual_context() -> None:
    # A flow stored without admission: the evaluation refuses, it does not run.
    expression = "steps['a'].outputs.parameters.exists(k, k.startsWith('x'))"
    big = conditions.build_context(
        "f", [{"name": "a", "outputs": {"parameters": {str(i): "v" for i in range(50_000)}}}]
    )
    with pytest.raises(conditions.ConditionError) as err:
        conditions.evaluate(expression, big)
    assert "cost" in str(err.value)


def test_iteration_budget_is_an_error_not_a_stall() -> None:
    # Past the static estimate (the program run directly), the engine's budget still stops it.
    expression = "size([" + ",".join(["1"] * 200) + "].map(a, [" + ",".join(["1"] * 200)
    expression += "].map(b, b))) > 0"
    program = conditions._compiled(expression).program
    with pytest.raises(RuntimeError, match="budget"):
        program.eval(data={"steps": {}, "flow": {}})


def test_cache_is_bounded_in_entries_and_bytes() -> None:
    cache = condition_engine.Cache[object](entries=4, size=100)
    compiled = conditions._compiled("flow.name == 'x'")
    for i in range(10):
        cache.put(f"{i}", compiled)
    assert len(cache) == 4
    cache.put("y" * 90, compiled)
    assert cache.used <= 100
    assert cache.get("y" * 90) is compiled


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("steps[]'\\\".()a.é-+!=&|0 ,?:{}")), max_size=300))
def test_fuzzed_text_only_raises_condition_errors(expression: str) -> None:
    try:
        conditions.check(expression, max_collection=5)
        conditions.evaluate(expression, CTX)
    except conditions.ConditionError:
        pass


_NULL_PROBE = """
import sys
from jobflow import condition_engine, condition_text, conditions
ctx = conditions.build_context("f", [])
def run(times):
    for _ in range(times):
        try:
            conditions.evaluate(sys.argv[1], ctx)
        except conditions.ConditionError:
            pass
run(100)  # warm up: importing and compiling move None's count once
before = sys.getrefcount(None)
run(3000)
print(sys.getrefcount(None) - before)
"""


@pytest.mark.parametrize("expression", ["dyn(null)", "dyn([null])", "dyn({'a': null})"])
def test_null_results_do_not_corrupt_the_interpreter(expression: str) -> None:
    # cel-expr-python 0.1.3 decrements None's refcount when a null is read back; once it reaches
    # zero CPython aborts ("deallocating None"). evaluate() must never read such a result. A
    # fresh process: the count is not disturbed by the test runner's own objects.
    result = subprocess.run(
        [sys.executable, "-c", _NULL_PROBE, expression],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert int(result.stdout) > -300, "None lost a reference per evaluation"
