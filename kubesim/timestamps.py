"""Timestamps as the API server writes them: RFC 3339 in UTC, whole seconds
(``2024-05-01T12:00:00Z``).

The one format of creationTimestamp, deletionTimestamp, managedFields times, conditions and Job
status. It has its own module so the store, the built-in kinds, managed fields and the runner
share it without importing one another.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import Final

FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"


# The last second formatted and its text: every write stamps times (managedFields, conditions,
# pod status), most within the same second as the one before, and formatting was ~2% of
# kubesim's CPU under load. A tuple is replaced whole, so threads never see half of one.
_last: tuple[int, str] = (-(2**62), "")


def now_rfc3339(ts: float | None = None) -> str:
    """``ts`` (seconds since the epoch; default: now) as an API timestamp."""
    global _last
    second = math.floor(time.time() if ts is None else ts)
    cached = _last
    if cached[0] == second:
        return cached[1]
    text = dt.datetime.fromtimestamp(second, tz=dt.UTC).strftime(FORMAT)
    _last = (second, text)
    return text


def parse_rfc3339(text: str) -> float | None:
    """Seconds since the epoch of an API timestamp; None for anything else."""
    try:
        return dt.datetime.strptime(text, FORMAT).replace(tzinfo=dt.UTC).timestamp()
    except (TypeError, ValueError):
        return None
