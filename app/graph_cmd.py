"""`zen-flow graph FILE [--format text|mermaid|dot]`: draw a JobFlow's step graph.

The file must hold exactly one JobFlow. Problems that make the graph meaningless (unknown or
self dependencies, duplicate names, cycles) are printed like `zen-flow validate` does and exit 1;
other problems (say, a missing image) do not stop the drawing.

- text: one line per level, each step with what it waits for;
- mermaid: a ``flowchart TD`` (Manual steps are hexagons, conditional steps are marked ``?``);
- dot: a Graphviz digraph, edges from a dependency to its dependant.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import Final

from app import documents
from app.cli import EXIT_FAILED, EXIT_OK, CommandError
from jobflow import dag, kinds, validation

# Problems that change the graph itself.
_GRAPH_CODES: Final = frozenset(
    {"duplicate-step-name", "unknown-dependency", "self-dependency", "dependency-cycle", "no-steps"}
)


class _StepInfo:
    def __init__(self, step: Mapping[str, object], *, is_finally: bool = False) -> None:
        self.is_finally = is_finally
        self.fan_out = _fan_out(step)
        self.awaits_approval = kinds.of_step(step).awaits_approval
        when = step.get("when")
        self.when = (
            when if isinstance(when, str) and when.strip() not in ("", "always", "true") else None
        )
        self.continue_on_failure = step.get("continueOnFailure") is True


def _fan_out(step: Mapping[str, object]) -> str | None:
    """``each of 3 items`` / ``each item of build.files``, with the step's parallelism."""
    items, param = step.get("withItems"), step.get("withParam")
    if isinstance(items, list):
        what = f"each of {len(items)} items"
    elif isinstance(param, Mapping):
        what = f"each item of {param.get('step')}.{param.get('parameter')}"
    else:
        return None
    cap = step.get("parallelism")
    return f"{what}, {cap} at once" if isinstance(cap, int) else what


def _with_finally(spec: Mapping[str, object]) -> tuple[list[dict[str, object]], set[str]]:
    """spec.steps then spec.finally, each finally step without dependencies of its own drawn
    after the steps nothing depends on (it runs once every step has ended)."""
    steps = [s for s in _as_list(spec.get("steps")) if isinstance(s, dict)]
    finals = [s for s in _as_list(spec.get("finally")) if isinstance(s, dict)]
    if not finals:
        return steps, set()
    depended = {d for s in steps for d in _as_list(s.get("dependencies"))}
    sinks = [
        s["name"] for s in steps if isinstance(s.get("name"), str) and s["name"] not in depended
    ]
    drawn = [{**f, "dependencies": _as_list(f.get("dependencies")) or sinks} for f in finals]
    return steps + drawn, {str(f.get("name")) for f in finals}


def _as_list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _label(name: str, info: _StepInfo) -> str:
    marks = []
    if info.is_finally:
        marks.append("finally")
    if info.fan_out is not None:
        marks.append(info.fan_out)
    if info.awaits_approval:
        marks.append("manual")
    if info.when is not None:
        marks.append(f"when {info.when}")
    if info.continue_on_failure:
        marks.append("continueOnFailure")
    return f"{name} [{', '.join(marks)}]" if marks else name


def render_text(flow_name: str, graph: dag.Graph, info: Mapping[str, _StepInfo]) -> str:
    levels = dag.levels(graph)
    lines = [f"JobFlow {flow_name}: {len(graph)} steps, {len(levels)} levels"]
    for number, level in enumerate(levels):
        lines.append(f"level {number}:")
        for name in level:
            deps = graph.dependencies_of(name)
            after = f"  <- {', '.join(deps)}" if deps else ""
            lines.append(f"  {_label(name, info[name])}{after}")
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    return json.dumps(text)  # a double-quoted string with \" and \\ escaped


def render_mermaid(flow_name: str, graph: dag.Graph, info: Mapping[str, _StepInfo]) -> str:
    ids = {name: f"s{i}" for i, name in enumerate(graph.names)}
    lines = ["flowchart TD", f"  %% JobFlow {flow_name}"]
    for name in graph.names:
        # Mermaid labels use #quot; for a double quote inside "..."
        label = _label(name, info[name]).replace('"', "#quot;")
        if info[name].awaits_approval:
            lines.append(f'  {ids[name]}{{{{"{label}"}}}}')
        elif info[name].when is not None:
            lines.append(f'  {ids[name]}{{"{label} ?"}}')
        else:
            lines.append(f'  {ids[name]}["{label}"]')
    for name in graph.names:
        for dep in graph.dependencies_of(name):
            lines.append(f"  {ids[dep]} --> {ids[name]}")
    return "\n".join(lines) + "\n"


def render_dot(flow_name: str, graph: dag.Graph, info: Mapping[str, _StepInfo]) -> str:
    lines = [f"digraph {_quoted(flow_name)} {{", "  rankdir=TB;", "  node [shape=box];"]
    for name in graph.names:
        attrs = [f"label={_quoted(_label(name, info[name]))}"]
        if info[name].awaits_approval:
            attrs.append("shape=hexagon")
        elif info[name].when is not None:
            attrs.append("shape=diamond")
        lines.append(f"  {_quoted(name)} [{', '.join(attrs)}];")
    for name in graph.names:
        for dep in graph.dependencies_of(name):
            lines.append(f"  {_quoted(dep)} -> {_quoted(name)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


_RENDERERS: Final = {"text": render_text, "mermaid": render_mermaid, "dot": render_dot}


def _the_flows(sources: Sequence[str]) -> list[documents.Document]:
    """Every JobFlow of ``sources``, in order; CommandError for a document that does not parse
    or when there is none."""
    flows: list[documents.Document] = []
    for source in sources:
        for doc in documents.load(source):
            if doc.parse_error is not None:
                raise CommandError(f"{doc.label}: {doc.parse_error}", exit_code=EXIT_FAILED)
            if doc.is_jobflow:
                flows.append(doc)
    if not flows:
        raise CommandError(
            f"{', '.join(sources)}: no JobFlow to draw (kind JobFlow)", exit_code=EXIT_FAILED
        )
    return flows


def _command(args: argparse.Namespace) -> int:
    drawings: list[str] = []
    failed = False
    for doc in _the_flows(documents.expand_sources(args.files)):
        content = doc.content
        assert isinstance(content, dict)
        blocking = [p for p in validation.validate(content) if p.code in _GRAPH_CODES]
        if blocking:
            for problem in blocking:
                print(f"{doc.label}: {problem.path}: {problem.message}")
            failed = True
            continue
        steps, finals = _with_finally(content["spec"])
        graph = dag.from_steps(steps)
        info = {
            name: _StepInfo(step, is_finally=name in finals)
            for name, step in zip(graph.names, steps, strict=True)
        }
        drawings.append(_RENDERERS[args.format](doc.name or "unnamed", graph, info))
    # several flows: one drawing after the other, a blank line between them
    print("\n".join(drawings), end="")
    return EXIT_FAILED if failed else EXIT_OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "graph",
        help="draw a JobFlow's step graph (text, Mermaid or Graphviz dot)",
        description="Draw the dependency graph of every JobFlow in the FILEs (a directory "
        "stands for its .yaml, .yml and .json files; '-' for stdin), one after the other.",
    )
    parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="manifest file, a directory of them, or - for stdin",
    )
    parser.add_argument(
        "-f",
        "--format",
        choices=tuple(_RENDERERS),
        default="text",
        help="text (default), mermaid or dot",
    )
    parser.set_defaults(func=_command)
