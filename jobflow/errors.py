"""Validation problems: what the webhook denies with and what `zen-flow validate` prints.

A ``Problem`` is a value: a stable kebab-case ``code`` that tests and tools match on, a field
``path`` in the notation users know from kubectl (``spec.steps[2].dependencies[0]``) and a
``message`` written for a person (what is wrong and what is allowed).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "path": self.path, "message": self.message}


class InvalidJobFlowError(ValueError):
    """Raised by code that needs a valid flow (e.g. the graph command) when it is not valid."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0] if problems else Problem("invalid", "", "invalid JobFlow")
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{first}{more}")
