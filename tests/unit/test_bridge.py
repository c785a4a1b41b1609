"""The trio <-> asyncio bridge: results, errors, cancellation both ways."""

from __future__ import annotations

import asyncio  # the test drives the asyncio side on purpose
import contextvars

import pytest
import trio

from storage.bridge import AsyncioBridge, BridgeClosed

pytestmark = pytest.mark.trio


@pytest.fixture
def bridge():
    b = AsyncioBridge()
    b.start()
    yield b
    b.stop()


async def test_result_and_exception(bridge):
    async def add(a, b):
        await asyncio.sleep(0)
        return a + b

    async def boom():
        raise KeyError("nope")

    assert await bridge.run(add, 2, 3) == 5
    with pytest.raises(KeyError):
        await bridge.run(boom)


async def test_many_concurrent_calls(bridge):
    async def echo(i):
        await asyncio.sleep(0.001)
        return i

    results = []

    async def one(i):
        results.append(await bridge.run(echo, i))

    async with trio.open_nursery() as nursery:
        for i in range(200):
            nursery.start_soon(one, i)
    assert sorted(results) == list(range(200))


async def test_trio_cancellation_cancels_the_asyncio_task(bridge):
    state = {"started": False, "cancelled": False}

    async def slow():
        state["started"] = True
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise

    with trio.move_on_after(0.2):
        await bridge.run(slow)
    # run() returns only after the asyncio side has really finished.
    assert state == {"started": True, "cancelled": True}


async def test_context_published_vs_per_call(bridge):
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def set_var(value):
        var.set(value)

    async def get_var():
        return var.get()

    await bridge.run(set_var, "leaked?")
    assert await bridge.run(get_var) == "unset"
    await bridge.publish_context(set_var, "shared")
    assert await bridge.run(get_var) == "shared"


async def test_call_back_into_trio(bridge):
    bridge.bind_trio()

    async def trio_side(x):
        await trio.sleep(0)
        return x * 2

    async def asyncio_side():
        return await bridge.call_trio(trio_side, 21)

    assert await bridge.run(asyncio_side) == 42


async def test_closed_bridge_refuses():
    b = AsyncioBridge()

    async def nothing():
        return None

    with pytest.raises(BridgeClosed):
        await b.run(nothing)
