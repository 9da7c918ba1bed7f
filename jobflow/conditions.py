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

1. ``shape()`` — before any parser: length (``MAX_LENGTH`` code points), bracket nesting
   (``MAX_NESTING``) and member/index/call nodes (``MAX_NODES``), counted by a linear lexer.
2. The engine's own parser and checker limits (depth, size), and its type checker: unknown
   variables and functions (``env()``, ``now()``) are compile errors, as are results that can
   never be a bool.
3. ``estimate_cost()`` — a worst-case evaluation cost from the token structure, refused over
   ``MAX_COST`` at admission (like Kubernetes' estimated cost limit). cel-cpp's
   ``map``/``filter`` accumulators copy the list on every iteration (quadratic: 10,000 elements
   took 3.5 s, under the iteration budget), so the estimate charges range sizes squared.
4. At run time, the engine's iteration budget; an exceeded budget is a ``ConditionError``.

Compiled programs are kept in a cache bounded in entries (``_CACHE_ENTRIES``) and source bytes
(``_CACHE_BYTES``); an expression refused by the limits is never compiled or kept.

Which steps an expression references is found by the same lexer (``referenced_steps``): a step
is referenced as ``steps['name']``, ``steps["name"]`` or ``steps.name``; any other use of
``steps`` (e.g. ``steps[x]`` or a macro over ``steps``) cannot be checked against the ancestor
rule and is reported as a problem by validation.
"""

from __future__ import annotations

import collections
import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from jobflow import outputs

if TYPE_CHECKING:
    from cel_expr_python import cel

RUN_LITERALS: Final = frozenset({"", "always", "true"})
SKIP_LITERALS: Final = frozenset({"never", "false"})
VARIABLES: Final = frozenset({"steps", "flow"})

# A condition is a line or two; 4,096 code points is ~50x the longest in our examples and keeps
# every worst case below (lexing, compiling, the cost estimate) in the low milliseconds.
MAX_LENGTH: Final = 4096
# All distinct conditions of one flow together: compiling costs ~1-2 us a character, so this
# bounds a review's CEL work near half a second (2,000 steps of 128 distinct characters fit).
MAX_TOTAL_LENGTH: Final = 256 * 1024
# Brackets ((), [], {}) open at once. cel-cpp's parser stops at a recursion depth of 32; this
# refuses deep input before it is parsed at all, with a message that says what to change.
MAX_NESTING: Final = 16
# Member selections, index operations and calls (each '.', '[' and '(' outside a string):
# bounds the size of the syntax tree whatever its shape.
MAX_NODES: Final = 256
# Worst-case evaluation cost in the units of ``estimate_cost`` (about one list-element copy or
# ten string bytes each). 10^6 is Kubernetes' per-expression runtime cost limit; the estimate is
# an upper bound, and the slowest expression bench/conditions.py builds at the limit evaluates
# in about 1 ms.
MAX_COST: Final = 1_000_000
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
_CACHE_ENTRIES: Final = 1024
_CACHE_BYTES: Final = 2 * 1024 * 1024  # of source text; programs are ~10x that in native memory


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


def literal_value(expression: str) -> bool | None:
    """True/False for the legacy literals, None when ``expression`` is a CEL expression."""
    text = expression.strip()
    if text in RUN_LITERALS:
        return True
    if text in SKIP_LITERALS:
        return False
    return None


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
class _Shape:
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
    def of(cls, tokens: Sequence[Token]) -> _Shape:
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
    return _Shape.of(tokens).cost(max_collection)


# --- the engine -----------------------------------------------------------------------------

_lock = threading.Lock()
_env: cel.Env | None = None
_typed_env: cel.Env | None = None


def _engine() -> cel.Env:
    """The environment conditions are evaluated in: ``steps`` and ``flow`` as maps, so the
    context is plain dicts (the typed environment below would need protobuf messages)."""
    # Imported on first use: flows without a CEL `when` (and `zen-flow validate` on them) never
    # load the 14 MB native module.
    global _env
    with _lock:
        if _env is None:
            from cel_expr_python import cel

            dyn = cel.Type.DYN
            _env = cel.NewEnv(
                variables={
                    "steps": cel.Type.Map(cel.Type.STRING, dyn),
                    "flow": cel.Type.Map(cel.Type.STRING, dyn),
                }
            )
        return _env


def _typed_engine() -> cel.Env:
    """The environment conditions are type-checked in: the declared context as message types,

        steps: map<string, zenflow.when.Step>   Step { string phase; Outputs outputs; }
        flow: zenflow.when.Flow                 Outputs { map<string, string> parameters; }
                                                Flow { string name;
                                                       map<string, string> parameters;
                                                       string phase;
                                                       repeated string failedSteps; }

    so a misspelt field (``steps['a'].phse``), a comparison of a phase with a number, or a
    result that is a string rather than a bool is a compile error at admission, not a failed
    step after its upstream steps ran. Evaluation stays in ``_engine`` (same semantics for
    these fields; the context stays plain dicts)."""
    global _typed_env
    with _lock:
        if _typed_env is None:
            from cel_expr_python import cel
            from google.protobuf import descriptor_pb2, descriptor_pool

            string, message, repeated, optional = 9, 11, 3, 1  # FieldDescriptorProto values
            proto = descriptor_pb2.FileDescriptorProto(
                name="zenflow/when.proto", package="zenflow.when", syntax="proto3"
            )

            def string_map(owner: descriptor_pb2.DescriptorProto, number: int) -> None:
                """A ``map<string, string> parameters`` field of ``owner``."""
                entry = owner.nested_type.add(name="ParametersEntry")
                entry.options.map_entry = True
                entry.field.add(name="key", number=1, type=string, label=optional)
                entry.field.add(name="value", number=2, type=string, label=optional)
                owner.field.add(
                    name="parameters",
                    number=number,
                    type=message,
                    label=repeated,
                    type_name=f".zenflow.when.{owner.name}.ParametersEntry",
                )

            outputs = proto.message_type.add(name="Outputs")
            string_map(outputs, 1)
            step = proto.message_type.add(name="Step")
            step.field.add(name="phase", number=1, type=string, label=optional)
            step.field.add(
                name="outputs",
                number=2,
                type=message,
                label=optional,
                type_name=".zenflow.when.Outputs",
            )
            flow = proto.message_type.add(name="Flow")
            flow.field.add(name="name", number=1, type=string, label=optional)
            string_map(flow, 2)
            flow.field.add(name="phase", number=3, type=string, label=optional)
            flow.field.add(name="failedSteps", number=4, type=string, label=repeated)
            pool = descriptor_pool.DescriptorPool()
            pool.Add(proto)
            _typed_env = cel.NewEnv(
                descriptor_pool=pool,
                variables={
                    "steps": cel.Type.Map(cel.Type.STRING, cel.Type("zenflow.when.Step")),
                    "flow": cel.Type("zenflow.when.Flow"),
                },
            )
        return _typed_env


@dataclass(frozen=True, slots=True)
class _Compiled:
    program: cel.Expression
    references: References
    shape: _Shape


class _Cache:
    """Compiled programs by source text, least recently used out first, bounded in entries and
    in source bytes (a tenant sending many distinct expressions cannot grow it for good)."""

    def __init__(self, entries: int, size: int) -> None:
        self.entries, self.size = entries, size
        self.used = 0
        self.hits = 0
        self._items: collections.OrderedDict[str, _Compiled] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> _Compiled | None:
        with self._lock:
            program = self._items.get(key)
            if program is not None:
                self._items.move_to_end(key)
                self.hits += 1
            return program

    def put(self, key: str, program: _Compiled) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = program
            self.used += len(key)
            while len(self._items) > self.entries or self.used > self.size:
                old, _ = self._items.popitem(last=False)
                self.used -= len(old)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.used = 0


_cache = _Cache(_CACHE_ENTRIES, _CACHE_BYTES)
_UNDECLARED = re.compile(r"undeclared reference to '([^']*)'")
_UNDEFINED_FIELD = re.compile(
    r"undefined field '([^']*)' not found in struct 'zenflow\.when\.(\w+)'"
)
_STRUCTS = {"Step": "a step has", "Outputs": "a step's outputs have", "Flow": "the flow has"}


def _first_line(text: str) -> str:
    line = _first_error(text)
    # The engine quotes the offending input, which may hold control characters.
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)


def _first_error(text: str) -> str:
    # The engine's message repeats the source and a caret diagram; the first ERROR line is the
    # part a person needs ("<input>:1:7: Syntax error: ...").
    errors = [line for line in text.splitlines() if "ERROR:" in line]
    errors.sort(key=lambda line: "Syntax error" not in line)  # stable: syntax errors first
    if errors:
        line = errors[0].split("ERROR:", 1)[1].strip().replace("<input>:", "at ")
        line = line.replace("at -1:-1: ", "")
        # The parser appends every token it would have accepted; that list helps nobody.
        return line.split(" expecting ", 1)[0].replace(" (in container '')", "")
    first = text.splitlines()[0] if text else "invalid expression"
    # "INVALID_ARGUMENT: expression size exceeds ... [INVALID_ARGUMENT]": drop the status codes.
    first = re.sub(r"^[A-Z_]+: ", "", first)
    return re.sub(r" \[[A-Z_]+\]$", "", first)


def _compile_error(expression: str, tokens: Sequence[Token], message: str) -> ConditionError:
    unknown = _UNDECLARED.findall(message)
    if unknown:
        called = {
            text
            for (kind, text), following in zip(tokens, [*tokens[1:], ("", "")], strict=True)
            if kind == "ident" and following == ("other", "(")
        }
        functions = sorted({name for name in unknown if name in called})
        names = sorted({name for name in unknown if name not in called})
        if names:
            return ConditionError(
                f"unknown variable(s) {', '.join(names)}; only steps and flow are defined"
                " (or use always, never, true, false)",
                "when-unknown-variable",
            )
        return ConditionError(
            f"unknown function(s) {', '.join(f + '()' for f in functions)}; conditions may use"
            " CEL's standard functions only",
            "when-unknown-function",
        )
    field = _UNDEFINED_FIELD.search(message)
    if field is not None:
        name, struct = field.groups()
        where = re.search(r"at (\d+:\d+)", _first_line(message))
        return ConditionError(
            f"{_STRUCTS.get(struct, struct)} no field {name!r}"
            f"{f' (at {where.group(1)})' if where else ''}; a step has phase and outputs,"
            " outputs have parameters, the flow has name and parameters",
            "when-unknown-field",
        )
    return ConditionError(f"not a valid CEL expression: {_first_line(message)}")


def _compiled(expression: str) -> _Compiled:
    known = _cache.get(expression)
    if known is not None:
        return known
    tokens = shape(expression)
    try:
        checked = _typed_engine().compile(expression)
        # Checked above; the evaluation program is not checked again: in the all-dyn environment
        # the checker picks the first overload for `dyn + dyn` (int) and refuses size() of it.
        program = _engine().compile(expression, disable_check=True)
    except Exception as exc:  # the binding raises RuntimeError with an absl status text
        raise _compile_error(expression, tokens, str(exc)) from None
    result = checked.return_type().name()
    if result not in {"BOOL", "DYN"}:
        raise ConditionError(
            f"evaluates to {result.lower()}, not a bool; compare it, e.g."
            " steps['a'].phase == 'Succeeded'",
            "when-not-bool",
        )
    compiled = _Compiled(program, _references(tokens), _Shape.of(tokens))
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
        raise ConditionError(f"{_first_line(str(exc))} while evaluating {expression!r}") from None
    # Only a BOOL or an ERROR result is converted: cel-expr-python 0.1.3's value() and
    # plain_value() decrement None's reference count for a null result (found by fuzzing: once
    # it reaches zero, CPython aborts the process), so other results are named, never read.
    kind = value.type().name()
    if kind == "ERROR":
        raise ConditionError(f"{_first_line(str(value.value()))} while evaluating {expression!r}")
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


def referenced_steps(expression: str) -> References:
    """Step names referenced by ``expression`` (see the module docstring); raises
    ``ConditionError`` like ``compile_expression``."""
    if literal_value(expression) is not None:
        return References(steps=(), is_dynamic=False)
    return _compiled(expression).references


def _references(tokens: Sequence[Token]) -> References:
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
