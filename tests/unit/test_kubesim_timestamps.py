"""kubesim's API timestamps: whole seconds in UTC, the cached second formatted exactly as
datetime formats it, whatever order the times come in."""

from __future__ import annotations

import datetime as dt
import random

from kubesim.timestamps import FORMAT, now_rfc3339, parse_rfc3339


def test_any_time_is_formatted_as_datetime_formats_it() -> None:
    rng = random.Random(7)
    edges = [0.0, 0.999999, 1.0, -0.5, -1.0, 1_700_000_000.999999, 1_700_000_001.0]
    for ts in edges + [rng.uniform(-1e9, 4e9) for _ in range(20_000)]:
        want = dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime(FORMAT)
        assert now_rfc3339(ts) == want, ts
        assert now_rfc3339(ts) == want, ts  # the cached answer too


def test_now_is_whole_seconds_that_parse_back() -> None:
    text = now_rfc3339()
    parsed = parse_rfc3339(text)
    assert parsed is not None and parsed == int(parsed)
    assert now_rfc3339(parsed) == text
