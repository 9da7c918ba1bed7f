"""Timestamps as the API server writes them: RFC 3339 in UTC, whole seconds
(``2024-05-01T12:00:00Z``).

The one format of creationTimestamp, deletionTimestamp, managedFields times, conditions and Job
status. It has its own module so the store, the built-in kinds, managed fields and the runner
share it without importing one another.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Final

FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"


def now_rfc3339(ts: float | None = None) -> str:
    """``ts`` (seconds since the epoch; default: now) as an API timestamp."""
    when = dt.datetime.fromtimestamp(time.time() if ts is None else ts, tz=dt.UTC)
    return when.strftime(FORMAT)


def parse_rfc3339(text: str) -> float | None:
    """Seconds since the epoch of an API timestamp; None for anything else."""
    try:
        return dt.datetime.strptime(text, FORMAT).replace(tzinfo=dt.UTC).timestamp()
    except (TypeError, ValueError):
        return None
