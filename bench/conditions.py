"""Benchmark: the CEL engine for `when`, its alternative, and the worst expressions admitted.

1. cel-expr-python (Google's cel-cpp, the runtime choice in jobflow.conditions) against
   cel-python (import ``celpy``, pure Python, a dev dependency kept for this comparison):
   compile and evaluate the same typical expressions against the same context, microseconds
   per expression, best of several rounds.
2. The cost limit: expressions built to sit just under ``conditions.MAX_COST`` (the largest
   list a macro may iterate, two macros, a long string chain) and the largest ones the shape
   limits let through, each timed through ``conditions.evaluate`` (the controller's call). The
   limit is right when the slowest admitted expression stays in the low milliseconds: a `when`
   is evaluated in a reconcile worker and holds the GIL while it runs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from jobflow import condition_engine, condition_text, conditions

EXPRESSIONS = (
    "steps['build'].phase == 'Succeeded'",
    "steps['test'].outputs.parameters['result'] == 'ok' && flow.name.startsWith('nightly')",
    "steps['a'].phase == 'Failed' || steps['b'].phase != 'Skipped'",
)
CONTEXT: dict[str, object] = {
    "steps": {
        "build": {"phase": "Succeeded", "outputs": {"parameters": {}}},
        "test": {"phase": "Succeeded", "outputs": {"parameters": {"result": "ok"}}},
        "a": {"phase": "Failed", "outputs": {"parameters": {}}},
        "b": {"phase": "Succeeded", "outputs": {"parameters": {}}},
    },
    "flow": {"name": "nightly-1"},
}
ROUNDS = 5
# How many output parameters the step in the worst-case context declares (admission's bound).
DECLARED_OUTPUTS = 16


def per_op_us(fn: Callable[[], object], ops: int) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / ops * 1e6


def _largest_admitted_list() -> str:
    """The longest literal list a single ``map`` may iterate under MAX_COST."""
    low, high = 1, 4000
    while low < high:
        mid = (low + high + 1) // 2
        text = "size([" + ",".join(["1"] * mid) + "].map(v, v)) > 0"
        try:
            conditions.check(text, max_collection=DECLARED_OUTPUTS)
            low = mid
        except conditions.ConditionError:
            high = mid - 1
    return "size([" + ",".join(["1"] * low) + "].map(v, v)) > 0"


def worst_cases() -> None:
    value = "x" * 4000
    context = conditions.build_context(
        "nightly-1",
        [
            {
                "name": "a",
                "phase": "Succeeded",
                "outputs": {"parameters": {f"p{i}": value for i in range(DECLARED_OUTPUTS)}},
            }
        ],
    )
    chain = " + ".join(["steps['a'].outputs.parameters['p0']"] * 12)
    cases = {
        "largest map under the cost limit": _largest_admitted_list(),
        "two macros over the outputs": (
            "steps['a'].outputs.parameters.exists(k, k.startsWith('p1'))"
            " && steps['a'].outputs.parameters.all(k, steps['a'].outputs.parameters[k] != '')"
        ),
        "12 concatenated 4 KB outputs": f"{chain} != flow.name",
        "longest string literal": "'" + "é" * (condition_text.MAX_LENGTH - 20) + "' != flow.name",
    }
    print(f"worst admitted expressions (MAX_COST {conditions.MAX_COST:.0e}):")
    for name, text in cases.items():
        refs = conditions.check(text, max_collection=DECLARED_OUTPUTS)
        assert not refs.is_dynamic
        cost = conditions._compiled(text).shape.cost(DECLARED_OUTPUTS)
        start = time.perf_counter()
        conditions._cache.clear()
        conditions.compile_expression(text)
        compile_s = time.perf_counter() - start
        eval_s = min(
            _timed(lambda text=text: conditions.evaluate(text, context)) for _ in range(ROUNDS)
        )
        print(
            f"  {name:34s} {len(text):5d} chars  estimate {cost:9.3g}"
            f"  compile {compile_s * 1e3:6.2f} ms  evaluate {eval_s * 1e3:6.2f} ms"
        )


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    from cel_expr_python import cel

    n = 300
    ops = n * len(EXPRESSIONS)
    env = condition_engine.engine()
    programs = [env.compile(e) for e in EXPRESSIONS]
    assert all(p.eval(data=CONTEXT).value() is True for p in programs)
    cpp_compile = per_op_us(lambda: [env.compile(e) for _ in range(n) for e in EXPRESSIONS], ops)
    cpp_eval = per_op_us(lambda: [p.eval(data=CONTEXT) for _ in range(n) for p in programs], ops)
    assert programs[0].return_type() == cel.Type.BOOL
    print(f"cel-expr-python (cel-cpp): compile {cpp_compile:7.1f} us  evaluate {cpp_eval:7.1f} us")
    try:
        import celpy
    except ImportError:
        print("cel-python not installed (dev extra); skipped")
    else:
        py_env = celpy.Environment()
        py_programs = [py_env.program(py_env.compile(e)) for e in EXPRESSIONS]

        def activation() -> dict[str, object]:
            return {key: celpy.json_to_cel(value) for key, value in CONTEXT.items()}

        assert all(bool(p.evaluate(activation())) for p in py_programs)
        m = 30
        py_compile = per_op_us(
            lambda: [py_env.program(py_env.compile(e)) for _ in range(m) for e in EXPRESSIONS],
            m * len(EXPRESSIONS),
        )
        py_eval = per_op_us(
            lambda: [p.evaluate(activation()) for _ in range(m) for p in py_programs],
            m * len(EXPRESSIONS),
        )
        print(
            f"cel-python:                compile {py_compile:7.1f} us  evaluate {py_eval:7.1f} us"
        )
        print(
            f"ratio cel-python/cel-cpp: compile {py_compile / cpp_compile:.1f}x, evaluate "
            f"{py_eval / cpp_eval:.1f}x"
        )
    worst_cases()
    return 0


if __name__ == "__main__":
    sys.exit(main())
