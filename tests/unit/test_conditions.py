"""jobflow.conditions: legacy literals, CEL evaluation over the documented context (phases,
output parameters, flow name), errors (syntax, missing key, non-bool, unknown variable), the
compile cache, build_context from status entries, and static step-reference extraction."""

from __future__ import annotations

import pytest

from jobflow import conditions

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
    before = conditions._compiled.cache_info().hits
    conditions.evaluate(expression, CTX)
    assert conditions._compiled.cache_info().hits == before + 1


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
        ("flow.steps == 1", (), False),
        ("always", (), False),
        ("steps['a'].phase == 'x' || steps['a'].phase == 'y'", ("a",), False),
    ],
)
def test_referenced_steps(expression: str, steps: tuple[str, ...], dynamic: bool) -> None:
    refs = conditions.referenced_steps(expression)
    assert refs.steps == steps
    assert refs.is_dynamic is dynamic


def test_variables() -> None:
    assert conditions.variables("steps['a'].phase == flow.name") == ["flow", "steps"]
    assert conditions.variables("never") == []
