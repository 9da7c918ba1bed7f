"""The CEL engine behind ``when`` (cel-expr-python, Google's cel-cpp): its two environments,
the translation of its compile errors into messages a flow author can act on, and the bounded
cache of compiled programs.

Evaluation runs in an environment where ``steps`` and ``flow`` are maps of dyn, so the context
is plain dicts; type checking runs in one that declares them as message types, so a misspelt
field, a comparison of a phase with a number or a result that is not a bool is a compile error at
admission. The native module is imported on first use: flows without a CEL ``when`` (and
``zen-flow validate`` on them) never load it. ``jobflow.conditions`` is the public face.
"""

from __future__ import annotations

import collections
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from jobflow.condition_text import ConditionError, Token

if TYPE_CHECKING:
    from cel_expr_python import cel

T = TypeVar("T")

_lock = threading.Lock()
_env: cel.Env | None = None
_typed_env: cel.Env | None = None


def engine() -> cel.Env:
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


def typed_engine() -> cel.Env:
    """The environment conditions are type-checked in: the declared context as message types,

        steps: map<string, zenflow.when.Step>   Step { string phase; Outputs outputs; }
        flow: zenflow.when.Flow                 Outputs { map<string, string> parameters; }
                                                Flow { string name;
                                                       map<string, string> parameters;
                                                       string phase;
                                                       repeated string failedSteps; }

    so a misspelt field (``steps['a'].phse``), a comparison of a phase with a number, or a
    result that is a string rather than a bool is a compile error at admission, not a failed
    step after its upstream steps ran. Evaluation stays in ``engine`` (same semantics for
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


class Cache(Generic[T]):
    """Compiled programs by source text, least recently used out first, bounded in entries and
    in source bytes (a tenant sending many distinct expressions cannot grow it for good)."""

    def __init__(self, entries: int, size: int) -> None:
        self.entries, self.size = entries, size
        self.used = 0
        self.hits = 0
        self._items: collections.OrderedDict[str, T] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> T | None:
        with self._lock:
            program = self._items.get(key)
            if program is not None:
                self._items.move_to_end(key)
                self.hits += 1
            return program

    def put(self, key: str, program: T) -> None:
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


_UNDECLARED = re.compile(r"undeclared reference to '([^']*)'")
_UNDEFINED_FIELD = re.compile(
    r"undefined field '([^']*)' not found in struct 'zenflow\.when\.(\w+)'"
)
_STRUCTS = {"Step": "a step has", "Outputs": "a step's outputs have", "Flow": "the flow has"}


def first_line(text: str) -> str:
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


def compile_error(expression: str, tokens: Sequence[Token], message: str) -> ConditionError:
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
        where = re.search(r"at (\d+:\d+)", first_line(message))
        return ConditionError(
            f"{_STRUCTS.get(struct, struct)} no field {name!r}"
            f"{f' (at {where.group(1)})' if where else ''}; a step has phase and outputs,"
            " outputs have parameters, the flow has name and parameters",
            "when-unknown-field",
        )
    return ConditionError(f"not a valid CEL expression: {first_line(message)}")
