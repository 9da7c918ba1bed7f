"""Step ``when`` conditions: legacy literals and CEL expressions, with limits that hold for
hostile input.

- ``""``, ``always``, ``true`` run the step; ``never``, ``false`` skip it (compared after
  stripping surrounding blanks, case-sensitive like the seed).
- Anything else is a CEL expression over two variables:
  ``steps['<name>'].phase``, ``steps['<name>'].outputs.parameters['<p>']``, ``flow.name`` and
  ``flow.parameters['<p>']`` (the flow parameters in effect, jobflow.requests), ``flow.phase``
  and ``flow.failedSteps`` (how spec.steps ended, for spec.finally steps; "Running" and []
  before). It must evaluate to a bool. Never Python ``eval``.

Engine: ``cel-expr-python`` (Google's cel-cpp, the implementation behind Google's own policy
services). Chosen for safety first (see docs/conditions.md for the measurements): the engine
zen-flow used before (``common-expression-language``, Rust cel 0.14) could take the whole
process down from one ``when``: a deep member chain or a long ``x-x-x...`` overflowed the
native stack (SIGSEGV), a syntax error past column 65535 raised a pyo3 ``PanicException`` (a
BaseException that killed reconcile threads), non-ASCII text made its parser allocate
quadratically (40 KB -> 1.5 GB), and evaluation had no budget at all (nested ``.map`` held the
GIL for seconds). cel-cpp bounds parser recursion (depth 32) and input size (100,000 code
points) itself, reports both as ordinary errors, caps comprehension iterations per evaluation
(10,000), uses RE2 for ``matches`` (linear time), and type-checks at compile time. It is also
faster to evaluate (6 us vs 26 us for a typical condition; compiling is ~90 us, once per text).

Defence in depth, so that no expression text reaches the engine unchecked (the model is
Kubernetes' own CEL limits: a size limit, a parser depth limit, and an estimated cost checked
before anything runs):

1. ``condition_text.shape()`` — before any parser: length (``MAX_LENGTH`` code points), bracket nesting
   (``MAX_NESTING``) and member/index/call nodes (``MAX_NODES``), counted by a linear lexer.
2. The engine's own parser and checker limits (depth, size), and its type checker: unknown
   variables and functions (``env()``, ``now()``) are compile errors, as are results that can
   never be a bool.
3. ``condition_text.estimate_cost()`` — a worst-case evaluation cost from the token structure, refused over
   ``MAX_COST`` at admission (like Kubernetes' estimated cost limit). cel-cpp's
   ``map``/``filter`` accumulators copy the list on every iteration (quadratic: 10,000 elements
   took 3.5 s, under the iteration budget), so the estimate charges range sizes squared.
4. At run time, the engine's iteration budget; an exceeded budget is a ``ConditionError``.

Compiled programs are kept in a cache bounded in entries (``_CACHE_ENTRIES``) and source bytes
(``_CACHE_BYTES``); an expression refused by the limits is never compiled or kept.

This module is the public face: literals, compile (through the cache), ``check``, ``evaluate``
and the evaluation context. The text-level parts (lexer, limits, cost estimate, references) are
``jobflow.condition_text``; the engine's environments, its error messages and the cache are
``jobflow.condition_engine``.

Which steps an expression references is found by the same lexer (``referenced_steps``): a step
is referenced as ``steps['name']``, ``steps["name"]`` or ``steps.name``; any other use of
``steps`` (e.g. ``steps[x]`` or a macro over ``steps``) cannot be checked against the ancestor
rule and is reported as a problem by validation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from jobflow import condition_engine, condition_text
from jobflow.condition_text import ConditionError, References, Token, shape

if TYPE_CHECKING:
    from cel_expr_python import cel

# The API below, and what callers take from condition_text through here: the error, the
# references, and the lexer (validation reads flow.parameters names from the tokens).
__all__ = [
    "MAX_COST",
    "MAX_TOTAL_LENGTH",
    "ConditionError",
    "References",
    "Token",
    "build_context",
    "check",
    "compile_expression",
    "evaluate",
    "literal_value",
    "referenced_steps",
    "shape",
]

RUN_LITERALS: Final = frozenset({"", "always", "true"})
SKIP_LITERALS: Final = frozenset({"never", "false"})

# All distinct conditions of one flow together: compiling costs ~1-2 us a character, so this
# bounds a review's CEL work near half a second (2,000 steps of 128 distinct characters fit).
MAX_TOTAL_LENGTH: Final = 256 * 1024
# Worst-case evaluation cost in the units of ``condition_text.estimate_cost`` (about one list-element copy or
# ten string bytes each). 10^6 is Kubernetes' per-expression runtime cost limit; the estimate is
# an upper bound, and the slowest expression bench/conditions.py builds at the limit evaluates
# in about 1 ms.
MAX_COST: Final = 1_000_000
_CACHE_ENTRIES: Final = 1024
_CACHE_BYTES: Final = 2 * 1024 * 1024  # of source text; programs are ~10x that in native memory


def literal_value(expression: str) -> bool | None:
    """True/False for the legacy literals, None when ``expression`` is a CEL expression."""
    text = expression.strip()
    if text in RUN_LITERALS:
        return True
    if text in SKIP_LITERALS:
        return False
    return None


@dataclass(frozen=True, slots=True)
class _Compiled:
    program: cel.Expression
    references: References
    shape: condition_text.Shape


_cache: condition_engine.Cache[_Compiled] = condition_engine.Cache(_CACHE_ENTRIES, _CACHE_BYTES)


def _compiled(expression: str) -> _Compiled:
    known = _cache.get(expression)
    if known is not None:
        return known
    tokens = condition_text.shape(expression)
    try:
        checked = condition_engine.typed_engine().compile(expression)
        # Checked above; the evaluation program is not checked again: in the all-dyn environment
        # the checker picks the first overload for `dyn + dyn` (int) and refuses size() of it.
        program = condition_engine.engine().compile(expression, disable_check=True)
    except Exception as exc:  # the binding raises RuntimeError with an absl status text
        raise condition_engine.compile_error(expression, tokens, str(exc)) from None
    result = checked.return_type().name()
    if result not in {"BOOL", "DYN"}:
        raise ConditionError(
            f"evaluates to {result.lower()}, not a bool; compare it, e.g."
            " steps['a'].phase == 'Succeeded'",
            "when-not-bool",
        )
    compiled = _Compiled(
        program, condition_text.references(tokens), condition_text.Shape.of(tokens)
    )
    _cache.put(expression, compiled)
    return compiled


def compile_expression(expression: str) -> None:
    """Raise ``ConditionError`` when a non-literal ``expression`` is over a limit or does not
    compile."""
    if literal_value(expression) is None:
        _compiled(expression)


def check(expression: str, *, max_collection: int) -> References:
    """Everything admission checks of a ``when``: limits, compilation (syntax, unknown names,
    bool result) and the cost estimate. Returns the steps it references."""
    if literal_value(expression) is not None:
        return References(steps=(), is_dynamic=False)
    compiled = _compiled(expression)
    _check_cost(compiled.shape.cost(max_collection))
    return compiled.references


def _check_cost(cost: float) -> None:
    if cost > MAX_COST:
        raise ConditionError(
            f"worst-case evaluation cost {cost:.3g} exceeds the limit of {MAX_COST:.0e};"
            " comprehension macros (map, filter, all, exists) over large or nested lists"
            " multiply it: test fewer values",
            "when-too-costly",
        )


def evaluate(expression: str, context: Mapping[str, object]) -> bool:
    """Evaluate a ``when`` against ``build_context(...)``; raise ``ConditionError`` on failure."""
    literal = literal_value(expression)
    if literal is not None:
        return literal
    compiled = _compiled(expression)
    # Admission checked the cost against the flow's declared outputs; a flow stored without
    # admission is checked here against what its context actually holds.
    _check_cost(compiled.shape.cost(_largest_collection(context)))
    try:
        value = compiled.program.eval(data=dict(context))
    except Exception as exc:  # budget exceeded and other runtime failures
        raise ConditionError(
            f"{condition_engine.first_line(str(exc))} while evaluating {expression!r}"
        ) from None
    # Only a BOOL or an ERROR result is converted: cel-expr-python 0.1.3's value() and
    # plain_value() decrement None's reference count for a null result (found by fuzzing: once
    # it reaches zero, CPython aborts the process), so other results are named, never read.
    kind = value.type().name()
    if kind == "ERROR":
        raise ConditionError(
            f"{condition_engine.first_line(str(value.value()))} while evaluating {expression!r}"
        )
    if kind != "BOOL":
        raise ConditionError(f"{expression!r} evaluated to {kind.lower()}, not a bool")
    return value.value() is True


def _largest_collection(context: Mapping[str, object]) -> int:
    flow = context.get("flow")
    flow_parameters = flow.get("parameters") if isinstance(flow, Mapping) else None
    largest = len(flow_parameters) if isinstance(flow_parameters, Mapping) else 0
    failed = flow.get("failedSteps") if isinstance(flow, Mapping) else None
    largest = max(largest, len(failed) if isinstance(failed, list) else 0)
    steps = context.get("steps")
    if not isinstance(steps, Mapping):
        return largest
    largest = max(largest, len(steps))
    for entry in steps.values():
        outputs = entry.get("outputs") if isinstance(entry, Mapping) else None
        params = outputs.get("parameters") if isinstance(outputs, Mapping) else None
        if isinstance(params, Mapping):
            largest = max(largest, len(params))
    return largest


def build_context(
    flow_name: str,
    steps: Sequence[Mapping[str, object]],
    parameters: Mapping[str, str] | None = None,
    *,
    outcome: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The evaluation context from ``status.steps[]`` entries and the flow parameters in
    effect (``flow.parameters``, a map, empty when the flow declares none).

    Every step gets ``phase`` (``Pending`` when unknown) and ``outputs.parameters`` (a map,
    empty when the step has none), so ``steps['x'].phase`` never fails for a step of the flow.
    """
    table: dict[str, object] = {}
    for entry in steps:
        name = entry.get("name")
        if not isinstance(name, str):
            continue
        phase = entry.get("phase")
        outputs = entry.get("outputs")
        params: dict[str, str] = {}
        if isinstance(outputs, Mapping):
            raw = outputs.get("parameters")
            if isinstance(raw, Mapping):
                params = {str(k): str(v) for k, v in raw.items()}
        table[name] = {
            "phase": phase if isinstance(phase, str) else "Pending",
            "outputs": {"parameters": params},
        }
    # flow.phase / flow.failedSteps: how spec.steps ended, for spec.finally steps
    # (planning.finale); "Running" and [] while the DAG runs.
    phase = outcome.get("phase") if outcome is not None else None
    failed = outcome.get("failedSteps") if outcome is not None else None
    flow = {
        "name": flow_name,
        "parameters": {str(k): str(v) for k, v in (parameters or {}).items()},
        "phase": phase if isinstance(phase, str) else "Running",
        "failedSteps": [str(f) for f in failed] if isinstance(failed, list) else [],
    }
    return {"steps": table, "flow": flow}


def referenced_steps(expression: str) -> References:
    """Step names referenced by ``expression`` (see the module docstring); raises
    ``ConditionError`` like ``compile_expression``."""
    if literal_value(expression) is not None:
        return References(steps=(), is_dynamic=False)
    return _compiled(expression).references
