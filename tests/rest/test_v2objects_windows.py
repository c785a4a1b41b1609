"""Cluster-wide sliding windows (storage/rate_windows.py) on SQLite and
PostgreSQL: exact counts, refusals not counted, concurrent requests never
admitted past the limit."""

from __future__ import annotations

import time

import pytest
import trio

from storage.rate_windows import Limit, RateWindows

pytestmark = pytest.mark.trio


async def test_window_counts_and_refuses(core) -> None:
    windows = RateWindows(core.db)
    limits = [Limit(5, 60), Limit(7, 3600, 60)]
    seen = [await windows.hit("key-a", limits) for _ in range(5)]
    assert [d.allowed for d in seen] == [True] * 5
    assert [d.states[0].remaining for d in seen] == [4, 3, 2, 1, 0]
    assert [d.states[1].remaining for d in seen] == [6, 5, 4, 3, 2]
    reset = seen[0].states[0].reset
    assert time.time() < reset <= time.time() + 61
    refused = await windows.hit("key-a", limits)
    assert not refused.allowed and refused.refused_by is refused.states[0]
    assert 1 <= refused.states[0].retry_after() <= 60
    # The refusal took nothing: the other window still has its 2.
    assert refused.states[1].remaining == 2
    assert (await windows.peek("key-a", limits)).states[1].remaining == 2
    # Another subject has its own windows.
    assert (await windows.hit("key-b", limits)).states[0].remaining == 4


async def test_concurrent_hits_never_exceed_the_limit(core) -> None:
    windows = RateWindows(core.db)
    limits = [Limit(10, 60)]
    results: list[bool] = []

    async def one() -> None:
        results.append((await windows.hit("busy", limits)).allowed)

    async with trio.open_nursery() as nursery:
        for _ in range(25):
            nursery.start_soon(one)
    assert results.count(True) == 10
    assert (await windows.peek("busy", limits)).states[0].remaining == 0
