"""A ``when`` expression read as text, before and without any CEL engine: the linear lexer,
the limits checked before a parser sees the text, the worst-case cost estimate, and the steps
and output parameters it references.

Everything here is linear in the text's length and pure: ``shape()`` refuses an expression over
``MAX_LENGTH`` code points, ``MAX_NESTING`` open brackets or ``MAX_NODES`` member/index/call
nodes; ``estimate_cost()`` bounds what evaluating it can cost from its token structure (cel-cpp's
``map``/``filter`` accumulators copy the list on every iteration, so ranges are charged
squared); ``references()`` finds ``steps['name']``, ``steps["name"]`` and ``steps.name`` (and
their ``.outputs.parameters[...]``), and reports any other use of ``steps`` as dynamic.
``jobflow.conditions`` is the public face (it compiles, caches and evaluates).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from jobflow import outputs

VARIABLES: Final = frozenset({"steps", "flow"})

# A condition is a line or two; 4,096 code points is ~50x the longest in our examples and keeps
# every worst case below (lexing, compiling, the cost estimate) in the low milliseconds.
MAX_LENGTH: Final = 4096
# Brackets ((), [], {}) open at once. cel-cpp's parser stops at a recursion depth of 32; this
# refuses deep input before it is parsed at all, with a message that says what to change.
MAX_NESTING: Final = 16
# Member selections, index operations and calls (each '.', '[' and '(' outside a string):
# bounds the size of the syntax tree whatever its shape.
MAX_NODES: Final = 256
# cel-cpp's comprehension iteration budget per evaluation (fixed in the engine; measured:
# 9,900 iterations pass, 10,000 fail).
ITERATION_BUDGET: Final = 10_000
# What a context string can hold at most: an output parameter value.
MAX_CONTEXT_STRING: Final = outputs.MAX_VALUE_BYTES
# The cost of a string operation per byte (Kubernetes charges 0.1 per traversed byte too).
_STRING_BYTE_COST: Final = 0.1
_MACROS: Final = frozenset({"all", "exists", "exists_one", "map", "filter"})
_STRING_FUNCTIONS: Final = frozenset(
    {"contains", "startsWith", "endsWith", "matches", "size", "string"}
)


class ConditionError(ValueError):
    """An expression that is refused, does not compile, or fails or is not a bool when run.

    ``code`` is the stable validation problem code for it."""

    def __init__(self, message: str, code: str = "invalid-when") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class References:
    steps: tuple[str, ...]  # step names referenced literally, in order of first appearance
    is_dynamic: bool  # ``steps`` used in a way whose step names cannot be known statically
    # (step, parameter) for each literal ``steps['s'].outputs.parameters['p']`` (or ``.p``)
    outputs: tuple[tuple[str, str], ...] = ()


# --- lexer and limits -----------------------------------------------------------------------

# Linear: every alternative either consumes input or fails at the first character that cannot
# continue it (an unterminated quote ends at the newline or the end of the text, which
# MAX_LENGTH bounds before this runs).
_TOKEN = re.compile(
    r"""
    (?P<string>[rRbB]{0,2}(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>[0-9][0-9A-Za-z_.]*)
  | (?P<space>\s+)
  | (?P<other>.)
    """,
    re.VERBOSE,
)
_SIMPLE_ESCAPES: Final = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}
_OPEN: Final = {"(": ")", "[": "]", "{": "}"}
_CLOSE: Final = frozenset(_OPEN.values())

Token = tuple[str, str]


def _tokens(expression: str) -> list[Token]:
    return [
        (kind, match.group())
        for match in _TOKEN.finditer(expression)
        for kind in (match.lastgroup,)
        if kind is not None and kind != "space"
    ]


def shape(expression: str) -> list[Token]:
    """The expression's tokens; raise ``ConditionError`` when it is over a limit.

    Runs before any parser sees the text, in time linear in its length."""
    if len(expression) > MAX_LENGTH:
        raise ConditionError(
            f"is {len(expression)} characters long, over the limit of {MAX_LENGTH}; a condition"
            " should test a few step phases or outputs (move logic into a step)",
            "when-too-long",
        )
    try:
        expression.encode("utf-8")
    except UnicodeEncodeError:
        raise ConditionError(
            "contains text that is not valid Unicode (a lone surrogate escape); remove it"
        ) from None
    tokens = _tokens(expression)
    depth = deepest = nodes = 0
    for kind, text in tokens:
        if kind != "other":
            continue
        if text in _OPEN:
            depth += 1
            deepest = max(deepest, depth)
        elif text in _CLOSE:
            depth = max(depth - 1, 0)
        if text in ".[(":
            nodes += 1
    if deepest > MAX_NESTING:
        raise ConditionError(
            f"nests brackets {deepest} deep, over the limit of {MAX_NESTING}; flatten it",
            "when-too-deep",
        )
    if nodes > MAX_NODES:
        raise ConditionError(
            f"has {nodes} member, index and call nodes, over the limit of {MAX_NODES}; simplify it",
            "when-too-complex",
        )
    return tokens


@dataclass(frozen=True, slots=True)
class Shape:
    """What ``estimate_cost`` needs of an expression's tokens (counted once per text)."""

    tokens: int
    elements: int  # literal elements at most: commas and opening brackets, plus one
    string_bytes: int  # of string literals
    longest_literal: int  # the longest string literal
    concatenations: int  # '+' operators: only they make a string longer than its parts
    string_ops: int  # '+', comparisons and string functions
    context_refs: int  # uses of the variables (each may bring a context string)
    macros: int  # comprehension macros (all, exists, exists_one, map, filter)
    nesting: int  # how many macros enclose the most deeply nested one

    @classmethod
    def of(cls, tokens: Sequence[Token]) -> Shape:
        elements, string_bytes, string_ops, macros, nesting, context_refs = 1, 0, 0, 0, 0, 0
        longest_literal = concatenations = 0
        stack: list[bool] = []  # per open '(': whether it is a macro call
        for position, (kind, text) in enumerate(tokens):
            if kind == "string":
                string_bytes += len(text)
                longest_literal = max(longest_literal, len(text))
            elif kind == "ident" and text in _STRING_FUNCTIONS:
                string_ops += 1
            elif kind == "ident" and text in VARIABLES:
                context_refs += 1
            elif kind == "other":
                if text in ",[{":
                    elements += 1
                if text in "+=<>":
                    string_ops += 1
                if text == "(":
                    is_macro = (
                        position >= 2
                        and tokens[position - 2] == ("other", ".")
                        and tokens[position - 1][0] == "ident"
                        and tokens[position - 1][1] in _MACROS
                    )
                    if is_macro:
                        macros += 1
                        nesting = max(nesting, sum(stack))
                    stack.append(is_macro)
                elif text == ")" and stack:
                    stack.pop()
        concatenations = sum(1 for token in tokens if token == ("other", "+"))
        return cls(
            len(tokens),
            elements,
            string_bytes,
            longest_literal,
            concatenations,
            string_ops,
            context_refs,
            macros,
            nesting,
        )

    def cost(self, max_collection: int) -> float:
        """See ``estimate_cost``."""
        total = float(self.tokens)
        reuse = total**self.nesting  # a nested macro's variable used up to T times
        size = (self.elements + max_collection + 1) * 2.0**self.macros * reuse
        context_strings = MAX_CONTEXT_STRING * self.context_refs
        if self.concatenations:
            longest = float(self.string_bytes + context_strings)
        else:  # nothing grows: the longest string is a literal or one context value
            longest = float(
                max(self.longest_literal, MAX_CONTEXT_STRING if self.context_refs else 0)
            )
        longest *= reuse
        iterations = 0.0
        if self.macros:
            iterations = min(float(ITERATION_BUDGET), self.macros * size ** (self.nesting + 1))
        cost = total + iterations * (total + size)
        cost += self.string_ops * longest * _STRING_BYTE_COST * (1 + iterations)
        return cost if math.isfinite(cost) else math.inf


def estimate_cost(tokens: Sequence[Token], *, max_collection: int) -> float:
    """Worst-case evaluation cost of an expression, from its tokens alone.

    An upper bound, never an estimate of the typical case. With T tokens, E literal elements
    (commas and opening brackets), C the largest collection the context can hold (``steps``,
    a step's output parameters), K comprehension macros, D their deepest nesting:
    - a collection holds at most R = (E + C + 1) * 2^K * T^D elements: each macro result is at
      most its range and can be added to another once, and a nested macro's variable can be
      used up to T times (``a + a + a``) to build its range;
    - iterations are at most min(budget, K * R^(D+1)), each costing the body (T) and, for
      ``map``/``filter``, a copy of the accumulator (R): the engine's accumulators are
      quadratic;
    - each string operation ('+', comparisons, string functions) may traverse the longest
      string once per iteration at most: with '+', all literals plus one context string (an
      output value, 4 KiB at most) per variable use; without, the longest literal or one
      context string; times T^D through nested macro variables.
    """
    return Shape.of(tokens).cost(max_collection)


# --- static references ----------------------------------------------------------------------


def _string_value(token: str) -> str | None:
    """The value of a simple quoted literal (raw or with basic escapes), else None."""
    if token[0] in "bB" or token[:2].lower() in {"rb", "br"}:
        return None  # bytes, not a step name
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


def references(tokens: Sequence[Token]) -> References:
    found: dict[str, None] = {}
    outputs: dict[tuple[str, str], None] = {}
    dynamic = False
    for position, (kind, text) in enumerate(tokens):
        if kind != "ident" or text != "steps":
            continue
        # ``x.steps`` is a field of something else, not our variable.
        if position > 0 and tokens[position - 1] == ("other", "."):
            continue
        rest = tokens[position + 1 : position + 4]
        name: str | None = None
        if (
            len(rest) == 3
            and rest[0] == ("other", "[")
            and rest[1][0] == "string"
            and rest[2] == ("other", "]")
        ):
            name = _string_value(rest[1][1])
            after = position + 4
        elif (
            len(rest) >= 2
            and rest[0] == ("other", ".")
            and rest[1][0] == "ident"
            and rest[2:3] != [("other", "(")]  # steps.exists(...) is a macro, not a step
        ):
            name = rest[1][1]
            after = position + 3
        if name is None:
            dynamic = True
            continue
        found.setdefault(name, None)
        parameter = _output_parameter(tokens, after)
        if parameter is not None:
            outputs.setdefault((name, parameter), None)
    return References(steps=tuple(found), is_dynamic=dynamic, outputs=tuple(outputs))


def _output_parameter(tokens: Sequence[Token], start: int) -> str | None:
    """The literal name in ``.outputs.parameters['p']`` or ``.outputs.parameters.p`` at
    ``start``, else None."""
    head = tokens[start : start + 4]
    if head != [("other", "."), ("ident", "outputs"), ("other", "."), ("ident", "parameters")]:
        return None
    rest = tokens[start + 4 : start + 7]
    if (
        len(rest) == 3
        and rest[0] == ("other", "[")
        and rest[1][0] == "string"
        and rest[2] == ("other", "]")
    ):
        return _string_value(rest[1][1])
    if (
        len(rest) >= 2
        and rest[0] == ("other", ".")
        and rest[1][0] == "ident"
        and rest[2:3] != [("other", "(")]  # parameters.exists(...) is a macro
    ):
        return rest[1][1]
    return None
