"""Retry delays for ``retryPolicy.backoff`` (the formula is ``spec.RetryPolicy.delay``) and
the Go-style duration strings they use (``quantities.parse_duration``, the grammar validation
checks; absent or unparsable means 1 s, as in the seed).
"""

from __future__ import annotations

from collections.abc import Mapping

from jobflow import quantities, spec

MAX_DELAY_SECONDS = spec.MAX_DELAY_SECONDS


def parse_duration(text: str) -> float | None:
    """Seconds in a Go duration string (``1h2m3.5s``), or None if it is not one.

    The grammar is ``quantities.parse_duration``, the one validation checks: a bare number such
    as ``"10"`` is not a duration (Go says "missing unit") and never reaches here in a valid
    flow; should one come from an unvalidated object, the default delay applies."""
    seconds = quantities.parse_duration(text.strip())
    return None if seconds is None else float(seconds)


def retry_delay(retry_policy: Mapping[str, object], attempt: int) -> float:
    """Seconds to wait after the failure of ``attempt`` (0-based) before the next one."""
    return spec.RetryPolicy.read(retry_policy).delay(attempt)
