"""webhook.deadlines: one timer per loop gives every body read its own deadline.

Real asyncio tasks and a real event loop; the reads wait on events that are set, or never. The
server's use of it (a stalled body answered 400 within body_timeout) is covered over HTTP by
tests/api/test_webhook_limits.py and tests/api/test_webhook_hostile.py.
"""

from __future__ import annotations

import asyncio

import pytest

from webhook.deadlines import BodyDeadlines

SECONDS = 0.2


async def _read(deadlines: BodyDeadlines, arrives: asyncio.Event) -> tuple[str, float]:
    """What a body read ends as ("read" or "expired") and when, as webhook.routes reads."""
    loop = asyncio.get_running_loop()
    task: asyncio.Task[object] = asyncio.current_task()  # type: ignore[assignment]
    deadlines.start(task)
    try:
        await arrives.wait()
    except asyncio.CancelledError:
        if not deadlines.finish(task):
            raise
        task.uncancel()
        await asyncio.sleep(0)  # the task still runs (it answers), not cancelled again
        return "expired", loop.time()
    deadlines.finish(task)
    await asyncio.sleep(0)
    return "read", loop.time()


def test_each_read_gets_its_own_deadline_and_reads_in_time_are_left_alone() -> None:
    async def scenario() -> None:
        deadlines = BodyDeadlines(SECONDS)
        loop = asyncio.get_running_loop()
        begin = loop.time()
        never, soon = asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(_read(deadlines, never))
        await asyncio.sleep(SECONDS / 2)
        second = asyncio.create_task(_read(deadlines, never))
        third = asyncio.create_task(_read(deadlines, soon))
        await asyncio.sleep(SECONDS / 4)
        soon.set()
        async with asyncio.timeout(5):  # a deadline never enforced fails here, not hangs
            ends = await asyncio.gather(first, second, third)
        (kind1, at1), (kind2, at2), (kind3, at3) = ends
        assert (kind1, kind2, kind3) == ("expired", "expired", "read")
        # Each at its own deadline (not all at the first's, not late by a whole period).
        assert SECONDS <= at1 - begin < SECONDS * 1.4
        assert SECONDS * 1.5 <= at2 - begin < SECONDS * 1.9
        assert at3 - begin < SECONDS
        assert not first.cancelled() and not second.cancelled()

    asyncio.run(scenario())


def test_a_cancellation_that_is_not_the_deadline_goes_on() -> None:
    async def scenario() -> None:
        deadlines = BodyDeadlines(SECONDS)
        task = asyncio.create_task(_read(deadlines, asyncio.Event()))
        await asyncio.sleep(SECONDS / 4)
        task.cancel()  # the server stopping
        with pytest.raises(asyncio.CancelledError):
            await task
        # Its deadline is forgotten: when it comes, nothing else is cancelled.
        survivor = asyncio.create_task(asyncio.sleep(SECONDS * 1.5))
        await survivor

    asyncio.run(scenario())


def test_one_instance_serves_loop_after_loop() -> None:
    """Tests run one app on several event loops in turn; each loop has its own timer (here the
    first loop ends with its timer still armed, for a read that finished in time)."""
    deadlines = BodyDeadlines(SECONDS)

    async def read(arrived: bool) -> str:
        arrives = asyncio.Event()
        if arrived:
            arrives.set()
        async with asyncio.timeout(5):
            kind, _ = await _read(deadlines, arrives)
        return kind

    assert asyncio.run(read(arrived=True)) == "read"
    assert asyncio.run(read(arrived=False)) == "expired"
    assert asyncio.run(read(arrived=False)) == "expired"
