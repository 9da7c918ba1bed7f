"""Planner benchmark: the CPU cost of one ``jobflow.planning.plan`` pass.

The controller calls ``plan()`` on every reconcile (usually twice per step: when the step starts
and when its Job ends), so its cost is part of the controller's throughput. Cases:

1. ``20-step pass``: a 20-step chain in the middle of its run (the bench/controller.py shape);
   once validating the spec, once with its problems known, as the controller calls it (it keeps
   ``spec_problems`` per flow generation).
2. ``2,000-step fan-out``: one pass that evaluates a CEL ``when`` and creates a Job for each of
   1,999 ready steps (guards against the quadratic context building fixed in e03a933).
3. ``2,000-step failure``: one pass that marks 1,999 dependants of a failed step Skipped.

Run: ``python bench/planning.py``. Figures are medians of a few repetitions on this machine.
"""

from __future__ import annotations

import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobflow.planning import plan, spec_problems
from tests.unit.planning_world import World, flow, step

BIG = 1999  # steps besides the root; validation allows at most 2,000 steps


def median_seconds(action: Callable[[], object], *, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def mid_run_chain(*, problems_known: bool = False) -> Callable[[], object]:
    steps = [step("s0")] + [step(f"s{i}", f"s{i - 1}") for i in range(1, 20)]
    world = World(flow=flow(*steps))
    for _ in range(10):  # ten steps done, the eleventh running
        world.reconcile(check_idempotent=False)
        world.advance(1)
        running = [n for n, j in world.jobs.items() if not j["status"].get("conditions")]  # type: ignore[union-attr]
        for name in running:
            world.finish(name, ok=True)
    world.reconcile(check_idempotent=False)
    frozen, observed, now = copy.deepcopy(world.flow), world.observed(), world.now
    if problems_known:
        known = spec_problems(frozen)
        return lambda: plan(frozen, observed, now, problems=known)
    return lambda: plan(frozen, observed, now)


def _first_step_finished(
    steps: list[dict[str, object]], *, first: str, ok: bool
) -> Callable[[], object]:
    """The next pass after ``first`` (the one step started) has finished with ``ok``."""
    world = World(flow=flow(*steps))
    world.reconcile(check_idempotent=False)
    world.advance(5)
    world.finish(world.job_of(first), ok=ok)
    frozen, observed, now = copy.deepcopy(world.flow), world.observed(), world.now
    return lambda: plan(frozen, observed, now)


def fan_out() -> Callable[[], object]:
    when = "steps['root'].phase == 'Succeeded'"
    steps = [step("root")] + [step(f"w{i}", "root", when=when) for i in range(BIG)]
    return _first_step_finished(steps, first="root", ok=True)


def failure() -> Callable[[], object]:
    steps = [step("s0")] + [step(f"s{i}", f"s{i - 1}") for i in range(1, BIG + 1)]
    return _first_step_finished(steps, first="s0", ok=False)


def main() -> None:
    print(f"20-step pass:        {median_seconds(mid_run_chain(), repeat=200) * 1000:8.2f} ms")
    known = mid_run_chain(problems_known=True)
    print(f"  with problems known: {median_seconds(known, repeat=200) * 1000:6.2f} ms (controller)")
    print(f"2,000-step fan-out:  {median_seconds(fan_out(), repeat=3) * 1000:8.1f} ms")
    print(f"2,000-step failure:  {median_seconds(failure(), repeat=3) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
