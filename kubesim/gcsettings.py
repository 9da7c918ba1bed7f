"""The cyclic garbage collector's thresholds for a process that serves kubesim.

kubesim keeps every stored object and their recent versions (the watch history, 20,000 events)
alive: hundreds of thousands of dicts and lists. CPython's default thresholds (700, 10, 10)
start a young collection every 700 net allocations of containers (a write allocates hundreds)
and, every hundred of those, a full collection that traverses every one of those objects again,
each time more of them as the history fills. Measured in bench/controller.py's throughput
phase (three rounds of 10,000 steps against one kubesim): the collector took 0.19, 0.31, then
0.37 ms of kubesim's CPU per step (1.10, 1.27, 1.45 ms in all, slower each round); with
(10,000, 20, 20) it is ~0.06-0.1 ms and the rounds stay near 1 ms.

Nothing kubesim keeps depends on the cyclic collector: stored objects are trees of dicts and
lists, freed by reference counting when the last version goes; the collector is for the few
cycles asyncio and aiohttp make (a failed request's traceback), which the rarer collections
still reclaim.
"""

from __future__ import annotations

import gc

THRESHOLDS = (10_000, 20, 20)


def tune() -> None:
    """Raise the collector's thresholds to ``THRESHOLDS``, never lower them: a host process that
    set higher ones (or turned automatic collection off with a 0) keeps its own."""
    current = gc.get_threshold()
    if current[0] == 0:
        return
    gc.set_threshold(*(max(have, ours) for have, ours in zip(current, THRESHOLDS, strict=True)))
