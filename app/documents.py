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
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from app.cli import CommandError
from jobflow import names

_LIST_KINDS = frozenset({"List", f"{names.KIND}List"})
# A JobFlow at the 1.5 MiB object limit holds ~200,000 values; five times that is no manifest.
MAX_EXPANDED_VALUES = 1_000_000

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


def _parse(text: str) -> tuple[list[object], str | None]:
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
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return found, f"not valid YAML/JSON: {where}{problem}"
    return found, None


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
