"""Step ``when`` conditions: legacy literals and CEL expressions.

- ``""``, ``always``, ``true`` run the step; ``never``, ``false`` skip it (compared after
  stripping surrounding blanks, case-sensitive like the seed).
- Anything else is a CEL expression over two variables:
  ``steps['<name>'].phase``, ``steps['<name>'].outputs.parameters['<p>']`` and ``flow.name``.
  It must evaluate to a bool. Never Python ``eval``.

Engine: ``common-expression-language`` (import name ``cel``, a Rust implementation), chosen
over ``cel-python`` (``celpy``) by ``bench/conditions.py`` on three typical expressions: about
43 us vs 350 us to compile and 53 us vs 450 us to evaluate per expression on a quiet machine
(8-12x faster for both; celpy's figure includes converting the context to its types, which a
controller would pay on every evaluation too). Syntax errors surface at compile time as
``ValueError``. cel-python stays a dev-only dependency for that comparison.

Compiled programs are cached per source text (``functools.lru_cache``): admission compiles each
expression once to reject syntax errors, and the controller evaluates the cached program.

Which steps an expression references is found by a small lexer (``referenced_steps``): a step is
referenced as ``steps['name']``, ``steps["name"]`` or ``steps.name``; any other use of ``steps``
(e.g. ``steps[x]`` or a macro over ``steps``) cannot be checked against the ancestor rule and is
reported as a problem by validation.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import cel

RUN_LITERALS: Final = frozenset({"", "always", "true"})
SKIP_LITERALS: Final = frozenset({"never", "false"})
VARIABLES: Final = frozenset({"steps", "flow"})
# Bound on how many distinct expressions stay compiled; flows reuse a handful each.
_CACHE_SIZE: Final = 4096


class ConditionError(ValueError):
    """An expression that does not compile, or fails or is not a bool when evaluated."""


@dataclass(frozen=True, slots=True)
class References:
    steps: tuple[str, ...]  # step names referenced literally, in order of first appearance
    is_dynamic: bool  # ``steps`` used in a way whose step names cannot be known statically


def literal_value(expression: str) -> bool | None:
    """True/False for the legacy literals, None when ``expression`` is a CEL expression."""
    text = expression.strip()
    if text in RUN_LITERALS:
        return True
    if text in SKIP_LITERALS:
        return False
    return None


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _compiled(expression: str) -> cel.Program:
    # Imported on first use: the package's __init__ also loads its REPL (prompt_toolkit),
    # ~0.3 s that flows without a CEL `when` (and `zen-flow validate` on them) never pay.
    import cel

    try:
        return cel.compile(expression)
    except (ValueError, RuntimeError, TypeError) as exc:
        raise ConditionError(_first_line(str(exc))) from None


def _first_line(text: str) -> str:
    # The engine's message repeats the source and a caret diagram; the first ERROR line is the
    # part a person needs ("<input>:1:7: Syntax error: ...").
    errors = [line for line in text.splitlines() if "ERROR:" in line]
    errors.sort(key=lambda line: "Syntax error" not in line)  # stable: syntax errors first
    if errors:
        line = errors[0].split("ERROR:", 1)[1].strip().replace("<input>:", "at ")
        # The parser appends every token it would have accepted; that list helps nobody.
        return line.split(" expecting ", 1)[0]
    return text.splitlines()[0] if text else "invalid expression"


def compile_expression(expression: str) -> None:
    """Raise ``ConditionError`` when a non-literal ``expression`` has a syntax error."""
    if literal_value(expression) is None:
        _compiled(expression)


def variables(expression: str) -> list[str]:
    """Top-level variables the expression uses (for rejecting anything but steps/flow)."""
    if literal_value(expression) is not None:
        return []
    return sorted(_compiled(expression).variables())


def evaluate(expression: str, context: Mapping[str, object]) -> bool:
    """Evaluate a ``when`` against ``build_context(...)``; raise ``ConditionError`` on failure."""
    literal = literal_value(expression)
    if literal is not None:
        return literal
    program = _compiled(expression)
    try:
        result = program.execute(dict(context))
    except KeyError as exc:
        raise ConditionError(
            f"no such key {exc.args[0]!r} while evaluating {expression!r}"
        ) from None
    except (ValueError, RuntimeError, TypeError) as exc:
        raise ConditionError(f"{_first_line(str(exc))} while evaluating {expression!r}") from None
    if not isinstance(result, bool):
        raise ConditionError(
            f"{expression!r} evaluated to {type(result).__name__} {result!r}, not a bool"
        )
    return result


def build_context(flow_name: str, steps: Sequence[Mapping[str, object]]) -> dict[str, object]:
    """The evaluation context from ``status.steps[]`` entries.

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
    return {"steps": table, "flow": {"name": flow_name}}


# --- static references ----------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<string>[rR]?(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<space>\s+)
  | (?P<other>.)
    """,
    re.VERBOSE,
)
_SIMPLE_ESCAPES: Final = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}


def _string_value(token: str) -> str | None:
    """The value of a simple quoted literal (raw or with basic escapes), else None."""
    raw = token[0] in "rR"
    body = token[1:] if raw else token
    quote = 3 if body[:3] in ("'''", '"""') else 1
    inner = body[quote:-quote]
    if raw or "\\" not in inner:
        return inner
    out: list[str] = []
    chars = iter(inner)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        escaped = next(chars, "")
        if escaped not in _SIMPLE_ESCAPES:
            return None
        out.append(_SIMPLE_ESCAPES[escaped])
    return "".join(out)


def referenced_steps(expression: str) -> References:
    """Step names referenced by ``expression`` (see the module docstring)."""
    if literal_value(expression) is not None:
        return References(steps=(), is_dynamic=False)
    tokens = [
        (kind, match.group())
        for match in _TOKEN.finditer(expression)
        for kind in (match.lastgroup,)
        if kind is not None and kind != "space"
    ]
    found: dict[str, None] = {}
    dynamic = False
    for position, (kind, text) in enumerate(tokens):
        if kind != "ident" or text != "steps":
            continue
        # ``x.steps`` is a field of something else, not our variable.
        if position > 0 and tokens[position - 1] == ("other", "."):
            continue
        rest = tokens[position + 1 : position + 4]
        if (
            len(rest) == 3
            and rest[0] == ("other", "[")
            and rest[1][0] == "string"
            and rest[2] == ("other", "]")
        ):
            value = _string_value(rest[1][1])
            if value is not None:
                found.setdefault(value, None)
                continue
        elif (
            len(rest) >= 2
            and rest[0] == ("other", ".")
            and rest[1][0] == "ident"
            and rest[2:3] != [("other", "(")]  # steps.exists(...) is a macro, not a step
        ):
            found.setdefault(rest[1][1], None)
            continue
        dynamic = True
    return References(steps=tuple(found), is_dynamic=dynamic)
