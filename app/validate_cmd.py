"""`zen-flow validate FILE|DIR... [--output text|json]`: the webhook's validation, offline (a
directory stands for its .yaml, .yml and .json files, as `kubectl apply -f DIR`).

Exit codes: 0 every document is a valid JobFlow; 1 any problem (an invalid JobFlow, a document
that is not a JobFlow, content that is not YAML/JSON); 2 usage error or a file that cannot be
read. Text output is one line per problem, ``FILE: path: message`` (``FILE#N`` for the N-th
document of a multi-document file), and one ``FILE: ok`` line per valid JobFlow.
"""

from __future__ import annotations

import argparse
import json
import sys

from app import documents
from app.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError
from jobflow import validation
from jobflow.errors import Problem


def _document_problems(doc: documents.Document) -> list[Problem]:
    if doc.parse_error is not None:
        return [Problem("invalid-yaml", "", doc.parse_error)]
    if not doc.is_jobflow:
        return [
            Problem(
                "not-a-jobflow",
                "",
                f"not a JobFlow: {doc.describe_kind()}; expected kind JobFlow",
            )
        ]
    content = doc.content
    assert isinstance(content, dict)
    return validation.validate(content)


def _step_count(doc: documents.Document) -> str:
    """``3`` steps, or ``3 + 2 finally``."""
    content = doc.content
    spec = content.get("spec") if isinstance(content, dict) else None
    steps = spec.get("steps") if isinstance(spec, dict) else None
    finals = spec.get("finally") if isinstance(spec, dict) else None
    count = str(len(steps) if isinstance(steps, list) else 0)
    return f"{count} + {len(finals)} finally" if isinstance(finals, list) and finals else count


def _command(args: argparse.Namespace) -> int:
    sources = documents.expand_sources(args.files)
    if sources.count("-") > 1:
        raise CommandError("'-' (stdin) can be given only once")
    results: list[dict[str, object]] = []
    unreadable = 0
    invalid = 0
    text_lines: list[str] = []
    for source in sources:
        try:
            docs = documents.load(source)
        except CommandError as exc:
            unreadable += 1
            print(f"zen-flow validate: {exc}", file=sys.stderr)
            continue
        if not docs:
            docs = [
                documents.Document(
                    source=source, index=1, count=1, parse_error="no documents (empty file)"
                )
            ]
        for doc in docs:
            problems = _document_problems(doc)
            invalid += bool(problems)
            results.append(
                {
                    "file": doc.source,
                    "document": doc.index,
                    "name": doc.name,
                    "valid": not problems,
                    "problems": [p.as_dict() for p in problems],
                }
            )
            if not problems:
                text_lines.append(f"{doc.label}: ok (JobFlow {doc.name}, {_step_count(doc)} steps)")
            for problem in problems:
                where = f"{problem.path}: " if problem.path else ""
                text_lines.append(f"{doc.label}: {where}{problem.message}")
    if args.output == "json":
        print(json.dumps(results, indent=2))
    else:
        for line in text_lines:
            print(line)
    if unreadable:
        return EXIT_USAGE
    return EXIT_FAILED if invalid else EXIT_OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="validate JobFlow manifests offline (the webhook's rules)",
        description="Validate JobFlow manifests (YAML with several documents, or JSON; '-' "
        "reads stdin) with the same rules as the admission webhook. Exit 0: all valid; 1: any "
        "problem; 2: usage error or unreadable file.",
    )
    parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="manifest file, a directory of them (*.yaml, *.yml, *.json), or - for stdin",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="text: one line per problem (default); json: a list of results",
    )
    parser.set_defaults(func=_command)
