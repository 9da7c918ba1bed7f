"""Reading JobFlow manifests from files or stdin for the offline commands.

A source is a path or ``-`` (stdin). YAML with several documents and JSON are both accepted
(JSON is YAML); ``kind: List`` documents (``kubectl get -o yaml``) are expanded into their
items. Each document keeps its position so messages can point at it.

Raises ``CommandError`` (exit 2) when a source cannot be read at all; a document that is not
valid YAML is a ``Document`` with a ``parse_error`` (the file was read, its content is wrong).

YAML aliases share one value between many places, so a few hundred bytes can stand for billions
of values (the "billion laughs" document: 9 levels of 9 aliases took validation 27 s and 5.3 GB).
Loading keeps the sharing and is cheap; every document is then measured as it would be expanded
(in time linear in its distinct values) and refused over ``MAX_EXPANDED_VALUES``, as the API
server's YAML decoder refuses "excessive aliasing".

Size comes before building: a source over ``MEASURE_ABOVE`` characters is first read as a
stream of parser events (nothing is built, so memory stays flat) and a document is refused as
soon as it holds more than ``MAX_EXPANDED_VALUES`` values, or spans more than
``MAX_DOCUMENT_CHARS`` characters, which no JobFlow under the 1.5 MiB object limit needs (for a
``List``, each item is measured instead, so ``kubectl get jf -o yaml`` of many flows stays
readable). A 50 MB manifest of 256,835 steps took 2 minutes and 3.5 GB to be parsed before
validation said it was over the limit; it is now refused in about a second, under 150 MB.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import yaml

from app.cli import CommandError
from jobflow import names, validation

_LIST_KINDS = frozenset({"List", f"{names.KIND}List"})
# A JobFlow at the 1.5 MiB object limit holds ~200,000 values; five times that is no manifest.
MAX_EXPANDED_VALUES = 1_000_000
# A JobFlow is at most 1.5 MiB as compact JSON; written as indented YAML or pretty JSON, with
# comments, it stays well under 8 times that. A document (or List item) longer is no JobFlow.
MAX_DOCUMENT_CHARS = 8 * validation.MAX_OBJECT_BYTES
# Below this a source cannot hold a document over either limit that matters (a value takes at
# least 2 characters: 1 MiB holds ~500,000), so small files are parsed at once.
MEASURE_ABOVE = 1024 * 1024
_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent, yaml.AliasEvent)
_END_EVENTS = (yaml.SequenceEndEvent, yaml.MappingEndEvent)

# The C loader is ~10x faster; fall back where PyYAML was built without libyaml.
_Loader: type[yaml.CSafeLoader] | type[yaml.SafeLoader] = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)


@dataclass(frozen=True)
class Document:
    source: str  # the path as given, or "-" for stdin
    index: int  # 1-based position in the source
    count: int  # documents in the source (labels only carry the index when > 1)
    content: object = None
    parse_error: str | None = None

    @property
    def label(self) -> str:
        shown = "<stdin>" if self.source == "-" else self.source
        return f"{shown}#{self.index}" if self.count > 1 else shown

    @property
    def is_jobflow(self) -> bool:
        # kind alone decides: a JobFlow with a wrong apiVersion is validated (and told so).
        return isinstance(self.content, Mapping) and self.content.get("kind") == names.KIND

    @property
    def name(self) -> str | None:
        if not isinstance(self.content, Mapping):
            return None
        meta = self.content.get("metadata")
        name = meta.get("name") if isinstance(meta, Mapping) else None
        return name if isinstance(name, str) else None

    def describe_kind(self) -> str:
        if not isinstance(self.content, Mapping):
            return f"a {type(self.content).__name__}, not an object"
        kind = self.content.get("kind")
        api_version = self.content.get("apiVersion")
        if kind is None:
            return "an object without kind/apiVersion"
        return f"kind {kind!r} ({api_version})"


MANIFEST_SUFFIXES: Final = (".yaml", ".yml", ".json")


def expand_sources(sources: Sequence[str]) -> list[str]:
    """``sources`` with each directory replaced by its manifest files (``*.yaml``, ``*.yml``,
    ``*.json``, sorted, not recursive: what ``kubectl apply -f DIR`` reads)."""
    out: list[str] = []
    for source in sources:
        path = Path(source)
        if source != "-" and path.is_dir():
            found = sorted(
                str(p) for p in path.iterdir() if p.is_file() and p.suffix in MANIFEST_SUFFIXES
            )
            if not found:
                raise CommandError(f"{source}: a directory without .yaml, .yml or .json files")
            out.extend(found)
        else:
            out.append(source)
    return out


def read_text(source: str) -> str:
    if source == "-":
        try:
            return sys.stdin.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read stdin: {exc}") from None
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CommandError(f"{source}: no such file; check the path") from None
    except IsADirectoryError:
        raise CommandError(f"{source}: is a directory; pass manifest files") from None
    except PermissionError:
        raise CommandError(f"{source}: permission denied") from None
    except UnicodeDecodeError:
        raise CommandError(f"{source}: not UTF-8 text; pass a YAML or JSON file") from None
    except OSError as exc:
        raise CommandError(f"{source}: cannot read: {exc.strerror}") from None


def expanded_size(value: object, limit: int) -> int:
    """How many values ``value`` holds once aliases are expanded; stops counting past ``limit``.

    Shared containers are measured once (by identity), so the walk is linear in the distinct
    values whatever the expansion; iterative, so deep nesting cannot exhaust the stack."""
    sizes: dict[int, int] = {}
    stack: list[tuple[object, bool]] = [(value, False)]
    while stack:
        item, children_done = stack.pop()
        if not isinstance(item, (dict, list)) or (id(item) in sizes and not children_done):
            continue
        children = list(item.values()) if isinstance(item, dict) else item
        if not children_done:
            sizes[id(item)] = 0  # in progress: a cycle (not possible from YAML) counts once
            stack.append((item, True))
            stack.extend((child, False) for child in children)
            continue
        total = 1
        for child in children:
            total += sizes.get(id(child), 1) if isinstance(child, (dict, list)) else 1
            if total > limit:
                return total
        sizes[id(item)] = total
    return sizes.get(id(value), 1) if isinstance(value, (dict, list)) else 1


class _Oversize(Exception):
    """A document over a limit: ``start`` is where it begins in the text."""

    def __init__(self, start: int, message: str) -> None:
        super().__init__(message)
        self.start = start
        self.message = message


def _too_long(where: str) -> str:
    return (
        f"{where} is longer than {MAX_DOCUMENT_CHARS:,} characters, which no JobFlow needs (the"
        f" limit is {validation.MAX_OBJECT_BYTES:,} bytes serialised, what etcd accepts);"
        " split it or move data to ConfigMaps"
    )


def measure(text: str) -> None:
    """Raise ``_Oversize`` for the first document over ``MAX_EXPANDED_VALUES`` values or
    ``MAX_DOCUMENT_CHARS`` characters (each item of a ``kind: List`` instead of the whole),
    stopping there. Reads parser events only: memory stays flat whatever the document's size.
    A text the parser refuses is left to the parser (``yaml.YAMLError`` propagates)."""
    loader = _Loader(text)
    meter: _Meter | None = None
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.DocumentStartEvent):
                meter = _Meter(number=meter.number + 1 if meter else 1, start=_index(event))
            elif isinstance(event, yaml.DocumentEndEvent) and meter is not None:
                meter.finish()
            elif meter is not None and event is not None:
                meter.take(event)
    finally:
        loader.dispose()


def _index(event: yaml.Event) -> int:
    mark = event.end_mark
    return mark.index if mark is not None else 0


@dataclass
class _Meter:
    """One document's size as its events go by (``measure``)."""

    number: int
    start: int
    values: int = 0
    containers: list[str] = field(default_factory=list)  # "key"/"value" (mappings), "item"
    root_key: object = None  # the root mapping's key whose value comes next
    kind: object = None
    is_over: bool = False  # longer than MAX_DOCUMENT_CHARS (judged once kind is known)
    in_items: bool = False  # inside the root mapping's "items" sequence (a List's)
    item: int = 0
    item_start: int | None = None

    def take(self, event: yaml.Event) -> None:
        if isinstance(event, _NODE_EVENTS):
            self._node(event)
        elif isinstance(event, _END_EVENTS):
            self.containers.pop()
            self.in_items = self.in_items and len(self.containers) > 1
        end = _index(event)
        if self.item_start is not None:
            if end - self.item_start > MAX_DOCUMENT_CHARS:
                raise _Oversize(self.start, _too_long(f"document {self.number}, item {self.item}"))
            if len(self.containers) <= 2:
                self.item_start = None  # the item ended (a scalar, or its container closed)
        self.is_over = self.is_over or end - self.start > MAX_DOCUMENT_CHARS
        if self.is_over and self.kind is not None:
            self.finish()

    def _node(self, event: yaml.Event) -> None:
        self.values += 1
        if self.values > MAX_EXPANDED_VALUES:
            raise _Oversize(
                self.start,
                f"document {self.number} holds more than {MAX_EXPANDED_VALUES:,} values (a"
                " JobFlow at the 1.5 MiB limit holds about 200,000); split it",
            )
        role = self.containers[-1] if self.containers else "root"
        if role in ("key", "value"):
            self.containers[-1] = "value" if role == "key" else "key"
        depth = len(self.containers)
        if depth == 1 and role == "key":
            self.root_key = event.value if isinstance(event, yaml.ScalarEvent) else None
        elif depth == 1 and role == "value":
            if self.root_key == "kind" and isinstance(event, yaml.ScalarEvent):
                self.kind = event.value
            self.in_items = self.root_key == "items" and isinstance(event, yaml.SequenceStartEvent)
        elif depth == 2 and self.in_items:
            self.item += 1
            mark = event.start_mark
            self.item_start = mark.index if mark is not None else 0
        if isinstance(event, yaml.MappingStartEvent):
            self.containers.append("key")
        elif isinstance(event, yaml.SequenceStartEvent):
            self.containers.append("item")

    def finish(self) -> None:
        if self.is_over and self.kind not in _LIST_KINDS:
            raise _Oversize(self.start, _too_long(f"document {self.number}"))


def _parse(text: str) -> tuple[list[object], str | None]:
    if len(text) > MEASURE_ABOVE:
        try:
            measure(text)
        except _Oversize as exc:
            # The documents before it are read as usual; it and what follows are not.
            before, error = _parse(text[: exc.start]) if exc.start else ([], None)
            return before, error or exc.message
        except yaml.YAMLError:
            if text.lstrip().startswith(("{", "[")) and len(text) > MAX_DOCUMENT_CHARS:
                # JSON that YAML cannot read (json.loads would build it whole): no JobFlow.
                return [], _too_long("document 1")
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return [json.loads(text)], None
        except json.JSONDecodeError:
            pass  # maybe YAML flow style; let the YAML parser have its say
    found: list[object] = []
    try:
        for doc in yaml.load_all(text, Loader=_Loader):  # _Loader is a SafeLoader
            if doc is None:
                continue
            if expanded_size(doc, MAX_EXPANDED_VALUES) > MAX_EXPANDED_VALUES:
                return found, (
                    f"document {len(found) + 1} uses YAML aliases (*name) that expand it to more"
                    f" than {MAX_EXPANDED_VALUES:,} values; write the values out instead"
                )
            found.append(doc)
    except yaml.YAMLError as exc:
        return found, describe_yaml_error(exc, text)
    return found, None


def describe_yaml_error(exc: yaml.YAMLError, text: str) -> str:
    """One line for a YAML parse error, with its line. A tab gets its own advice: PyYAML only
    says "found character '\\t' that cannot start any token" (libyaml leaves out even the tab)."""
    mark = getattr(exc, "problem_mark", None)
    problem = str(getattr(exc, "problem", None) or str(exc).splitlines()[0])
    if mark is None:
        return f"not valid YAML/JSON: {problem}"
    lines = text.splitlines()
    line = lines[mark.line] if 0 <= mark.line < len(lines) else ""
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    if "\t" in indent or line[mark.column : mark.column + 1] == "\t" or "tab" in problem:
        return f"YAML does not allow tabs for indentation (line {mark.line + 1}); use spaces"
    return f"not valid YAML/JSON: line {mark.line + 1}, column {mark.column + 1}: {problem}"


def load(source: str) -> list[Document]:
    """Every document of ``source`` (``List`` kinds expanded); raises CommandError if unreadable."""
    raw, error = _parse(read_text(source))
    contents: list[object] = []
    for doc in raw:
        items = doc.get("items") if isinstance(doc, Mapping) else None
        if isinstance(doc, Mapping) and doc.get("kind") in _LIST_KINDS and isinstance(items, list):
            contents.extend(items)
        else:
            contents.append(doc)
    count = len(contents) + (1 if error else 0)
    documents = [
        Document(source=source, index=i, count=count, content=c)
        for i, c in enumerate(contents, start=1)
    ]
    if error is not None:
        documents.append(Document(source=source, index=count, count=count, parse_error=error))
    return documents
