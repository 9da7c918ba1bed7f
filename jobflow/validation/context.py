"""What the checks of one validation pass share: the object, the problems found so far, the
step graph once it is built, and the messages and bounds more than one group of checks uses.

Every check is a function ``check_<what>(ctx, ...)`` in the module of its group (``flow``,
``steps``, ``templates``, ``data``); it reads the raw dict and calls ``ctx.add``. Problems are
kept in the order they are found, and that order is part of the contract (the webhook's denial
lists them as found; tests compare whole lists).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from jobflow import dag, names
from jobflow.errors import Problem

MAX_INT32: Final = 2**31 - 1
MAX_STEP_TIMEOUT_SECONDS: Final = 30 * 24 * 3600  # the seed's bound: 30 days
MAX_BACKOFF_SECONDS: Final = 720 * 3600  # the seed's bound: 720h


class Context:
    """One pass over one object."""

    def __init__(
        self,
        obj: Mapping[str, object],
        *,
        has_placeholders: bool = True,
        warnings: list[str] | None = None,
        fast: bool = True,
    ) -> None:
        self.obj = obj
        # Risk warnings are collected here during the step walk when a list is given.
        self.warnings = warnings
        # False: every step takes the full path (pydantic and every rule), the reference the
        # fast path (jobflow.validation.fast) is tested against.
        self.fast = fast
        # False when the serialised object contains no "{{": the template walk is skipped.
        self.has_placeholders = has_placeholders
        self.problems: list[Problem] = []
        self._graph: dag.Graph | None = None  # set by steps.check_steps before the step fields
        self._graph_pairs: list[tuple[str, list[str]]] | None = None  # or built from these
        self._ancestry: dag.Ancestry | None = None
        self.outputs: dict[str, tuple[set[str], set[str]]] = {}  # step -> (params, artifacts)
        self.has_workspace = False  # spec.workspace declared (artifacts need it)
        # Set by steps.check_steps: every step was vouched for (jobflow.validation.fast), so
        # none has a field beyond fast.STEP_KEYS; later checks of other fields may skip them.
        self.all_vouched = False
        # Distinct `when` texts compiled so far and their length (conditions.MAX_TOTAL_LENGTH).
        self.when_texts: set[str] = set()
        self.when_length = 0
        self._largest_outputs: int | None = None
        # Names of spec.parameters (set by validation.requests before the steps are checked).
        self.flow_parameters: set[str] = set()

    @property
    def graph(self) -> dag.Graph | None:
        """The step graph (None before check_steps), built on first use when check_steps
        deferred it (``defer_graph``)."""
        if self._graph is None and self._graph_pairs is not None:
            self._graph = dag.build(self._graph_pairs)
        return self._graph

    @graph.setter
    def graph(self, graph: dag.Graph | None) -> None:
        self._graph, self._graph_pairs = graph, None

    def defer_graph(self, pairs: list[tuple[str, list[str]]]) -> None:
        """The graph of these (name, dependencies) pairs, built only if something reads it."""
        self._graph, self._graph_pairs = None, pairs

    @property
    def largest_outputs(self) -> int:
        """The most output parameters one step declares, or flow parameters (what a `when`
        macro may iterate)."""
        if self._largest_outputs is None:
            # flow.parameters is a map a macro may iterate too
            self._largest_outputs = max(
                [len(self.flow_parameters), *(len(p) for p, _ in self.outputs.values())]
            )
        return self._largest_outputs

    def add(self, code: str, path: str, message: str) -> None:
        self.problems.append(Problem(code, path, message))

    def is_ancestor(self, ancestor: str, of: str) -> bool:
        if self.graph is None:
            return False
        if self._ancestry is None:
            self._ancestry = dag.Ancestry(self.graph)
        return self._ancestry.is_ancestor(ancestor, of)

    def check_step_reference(self, ref: str, step: str, path: str, *, code_prefix: str) -> None:
        """``ref`` (from a ``when`` or an input of ``step``) names an ancestor of ``step``."""
        graph = self.graph
        if graph is None:
            return
        if ref not in graph.index:
            self.add(f"{code_prefix}-unknown-step", path, f"{ref!r} is not a step of this flow")
        elif not self.is_ancestor(ref, step):
            self.add(
                f"{code_prefix}-references-non-ancestor",
                path,
                f"step {ref!r} is not a dependency (direct or transitive) of {step!r}; add it to"
                " dependencies",
            )


def dns_subdomain_message(what: str, text: str) -> str:
    return (
        f"{what} {text!r} must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.',"
        f" starting and ending with a letter or digit, at most {names.MAX_SUBDOMAIN_LENGTH}"
        " characters"
    )
