"""What a write asks of the Store, as the real API server's registry receives it: the request's
options and the admission chain passed in as callbacks (``rest.ValidateObjectFunc`` and the
mutating admission wrapped around an update), so the Store decides where admission runs.

The Store calls ``mutate`` after preparing (pruning, defaulting) the object and before its own
validation, then ``validate`` just before it commits; both run outside the Store's lock (the
webhooks they call are blocking HTTPS requests). Without admission (``None``) the Store prepares
and validates an object exactly once, under its lock.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any, Protocol


class Admission(Protocol):
    """The admission chain bound to one request (operation, user, options)."""

    def mutate(
        self, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> tuple[dict[str, Any], builtins.list[str]]:
        """Mutating admission: the object as admitted and the warnings."""
        ...

    def validate(
        self, obj: dict[str, Any] | None, old: dict[str, Any] | None
    ) -> builtins.list[str]:
        """Validating admission (raises ApiError to refuse); the warnings."""
        ...


@dataclass
class Write:
    """One create, update or delete request for the Store's write path.

    ``old`` (update): the object a patch was computed from, which admission sees as the old
    object (default: the stored one). ``managed_override``: managedFields a server-side apply
    computed (the Store then records no Update entry). ``warnings`` collects what the request
    answers with (unknown fields per ``field_validation``, admission warnings).
    """

    namespace: str | None = None
    subresource: str | None = None
    dry_run: bool = False
    field_manager: str | None = None
    field_validation: str = "Ignore"
    admission: Admission | None = None
    old: dict[str, Any] | None = None
    managed_override: builtins.list[dict[str, Any]] | None = None
    require_resource_version: bool = False
    propagation: str = "Background"
    preconditions: dict[str, Any] | None = None
    warnings: builtins.list[str] = field(default_factory=list)
