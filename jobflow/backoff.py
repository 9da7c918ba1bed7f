"""Retry delays for ``retryPolicy.backoff`` and the Go-style duration strings they use.

The delay after attempt ``n`` (0-based) is:
- Fixed: ``d``
- Linear: ``d * (n + 1)``
- Exponential (also the fallback for an absent/unknown type): ``d * factor ** n``

``d`` is ``backoff.duration`` (a Go duration such as ``10s``, ``1m30s``, ``500ms``, read by
``quantities.parse_duration``; absent or unparsable means 1 s, as in the seed) and ``factor`` defaults to 2.0. Delays are capped at
``MAX_DELAY_SECONDS`` so an exponential policy with a large limit cannot overflow a float into
a wake-up that never comes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from jobflow import decoded, quantities

DEFAULT_DURATION_SECONDS: Final = 1.0  # the seed's base delay when duration is absent
DEFAULT_FACTOR: Final = 2.0
# One day: far beyond any sensible retry delay, small enough for timestamps to stay exact.
MAX_DELAY_SECONDS: Final = 86400.0


def parse_duration(text: str) -> float | None:
    """Seconds in a Go duration string (``1h2m3.5s``), or None if it is not one.

    The grammar is ``quantities.parse_duration``, the one validation checks: a bare number such
    as ``"10"`` is not a duration (Go says "missing unit") and never reaches here in a valid
    flow; should one come from an unvalidated object, the default delay applies."""
    seconds = quantities.parse_duration(text.strip())
    return None if seconds is None else float(seconds)


def retry_delay(retry_policy: Mapping[str, object], attempt: int) -> float:
    """Seconds to wait after the failure of ``attempt`` (0-based) before the next one."""
    backoff = decoded.mapping(retry_policy.get("backoff"))
    duration_text = decoded.string(backoff.get("duration"))
    base = parse_duration(duration_text) if duration_text is not None else None
    if base is None or base < 0:
        base = DEFAULT_DURATION_SECONDS
    kind = decoded.string(backoff.get("type")) or "Exponential"
    n = max(attempt, 0)
    if kind == "Fixed":
        delay = base
    elif kind == "Linear":
        delay = base * (n + 1)
    else:
        factor = decoded.number(backoff.get("factor"))
        if factor is None or factor <= 0:
            factor = DEFAULT_FACTOR
        try:
            delay = base * factor**n
        except OverflowError:
            delay = MAX_DELAY_SECONDS
    return min(delay, MAX_DELAY_SECONDS)
