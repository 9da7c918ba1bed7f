"""Benchmark: the two CEL engines considered for `when`, on compile and evaluate.

common-expression-language (import ``cel``, Rust) is the runtime choice in jobflow.conditions;
cel-python (import ``celpy``, pure Python) is a dev dependency kept for this comparison. Both
compile and evaluate the same typical expressions against the same context; the figures are
microseconds per expression, best of several rounds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import cel

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


def per_op_us(fn: Callable[[], object], ops: int) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / ops * 1e6


def main() -> int:
    n = 300
    ops = n * len(EXPRESSIONS)
    programs = [cel.compile(e) for e in EXPRESSIONS]
    assert all(p.execute(CONTEXT) is True for p in programs)
    rust_compile = per_op_us(lambda: [cel.compile(e) for _ in range(n) for e in EXPRESSIONS], ops)
    rust_eval = per_op_us(lambda: [p.execute(CONTEXT) for _ in range(n) for p in programs], ops)
    print(
        f"common-expression-language: compile {rust_compile:7.1f} us  evaluate {rust_eval:7.1f} us"
    )
    try:
        import celpy
    except ImportError:
        print("cel-python not installed (dev extra); skipped")
        return 0
    env = celpy.Environment()
    py_programs = [env.program(env.compile(e)) for e in EXPRESSIONS]

    def activation() -> dict[str, object]:
        return {key: celpy.json_to_cel(value) for key, value in CONTEXT.items()}

    assert all(bool(p.evaluate(activation())) for p in py_programs)
    m = 30
    py_compile = per_op_us(
        lambda: [env.program(env.compile(e)) for _ in range(m) for e in EXPRESSIONS],
        m * len(EXPRESSIONS),
    )
    py_eval = per_op_us(
        lambda: [p.evaluate(activation()) for _ in range(m) for p in py_programs],
        m * len(EXPRESSIONS),
    )
    print(f"cel-python:                 compile {py_compile:7.1f} us  evaluate {py_eval:7.1f} us")
    print(
        f"ratio cel-python/rust: compile {py_compile / rust_compile:.1f}x, evaluate "
        f"{py_eval / rust_eval:.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
