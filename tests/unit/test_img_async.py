"""The image engine under trio: single-flight, the limiter, cancellation
(protocols/img/singleflight.py, transform_async in protocols/img/transform.py)."""

from __future__ import annotations

import pytest
import pyvips
import trio
import trio.testing

from protocols.img.params import parse_params
from protocols.img.singleflight import SingleFlight
from protocols.img.transform import (
    Limits,
    TransformResult,
    default_concurrency,
    default_limiter,
    transform,
    transform_async,
)


class Gated:
    """A computation that counts its runs and finishes when the gate opens."""

    def __init__(self, result: object = "done", error: Exception | None = None) -> None:
        self.gate = trio.Event()
        self.runs = 0
        self.result = result
        self.error = error

    async def __call__(self) -> object:
        self.runs += 1
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return self.result


async def _gather(flight: SingleFlight, key: str, compute: Gated, n: int) -> list[object]:
    """Start ``n`` callers, open the gate once all wait, return their outcomes."""
    outcomes: list[object] = []

    async def caller() -> None:
        try:
            outcomes.append(await flight.run(key, compute))
        except Exception as exc:
            outcomes.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(caller)
        await trio.testing.wait_all_tasks_blocked()
        assert flight.in_flight() == 1
        compute.gate.set()
    return outcomes


@pytest.mark.trio
async def test_concurrent_callers_share_one_computation() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    compute = Gated(result=object())
    outcomes = await _gather(flight, "k", compute, 10)
    assert compute.runs == 1
    assert len(outcomes) == 10 and all(o is compute.result for o in outcomes)
    assert flight.in_flight() == 0


@pytest.mark.trio
async def test_an_error_is_shared_and_not_remembered() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    failing = Gated(error=ValueError("broken source"))
    outcomes = await _gather(flight, "k", failing, 5)
    assert failing.runs == 1 and all(o is failing.error for o in outcomes)
    retry = Gated(result="fine")
    retry.gate.set()
    assert await flight.run("k", retry) == "fine"  # the next request computes again


@pytest.mark.trio
async def test_different_keys_compute_separately() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    first, second = Gated(result=1), Gated(result=2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(flight.run, "a", first)
        nursery.start_soon(flight.run, "b", second)
        await trio.testing.wait_all_tasks_blocked()
        assert flight.in_flight() == 2
        first.gate.set()
        second.gate.set()
    assert (first.runs, second.runs) == (1, 1)


@pytest.mark.trio
async def test_a_cancelled_leader_hands_over_to_a_waiting_caller() -> None:
    flight: SingleFlight[str, object] = SingleFlight()
    compute = Gated(result="shared")
    outcomes: list[object] = []

    async def follower() -> None:
        outcomes.append(await flight.run("k", compute))

    leader_scope = trio.CancelScope()

    async def leader() -> None:
        with leader_scope:
            await flight.run("k", compute)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(leader)
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(3):
            nursery.start_soon(follower)
        await trio.testing.wait_all_tasks_blocked()
        assert compute.runs == 1
        leader_scope.cancel()  # the first client hangs up
        await trio.testing.wait_all_tasks_blocked()
        assert compute.runs == 2  # one follower took over
        compute.gate.set()
    assert outcomes == ["shared"] * 3


@pytest.fixture(scope="module")
def photo() -> bytes:
    noise = pyvips.Image.gaussnoise(800, 600, sigma=40, mean=128)
    return noise.bandjoin([noise.rot180(), noise.flipver()]).cast("uchar") \
        .copy(interpretation="srgb").jpegsave_buffer()


@pytest.mark.trio
async def test_transform_async_matches_the_blocking_call(photo: bytes) -> None:
    params = parse_params("w=200&h=200&fit=cover")
    result = await transform_async(photo, params, "webp")
    assert isinstance(result, TransformResult)
    assert result == transform(photo, params, "webp")


@pytest.mark.trio
async def test_identical_concurrent_transforms_run_once(photo: bytes) -> None:
    params = parse_params("w=300&format=webp")
    key = params.canonical("webp")
    flight: SingleFlight[str, TransformResult] = SingleFlight()
    runs = 0
    results: list[TransformResult] = []

    async def compute() -> TransformResult:
        nonlocal runs
        runs += 1
        return await transform_async(photo, params, "webp")

    async def request() -> None:
        results.append(await flight.run(key, compute))

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(request)
    assert runs == 1
    assert len(results) == 8 and len({r.data for r in results}) == 1
    assert (results[0].width, results[0].height) == (300, 225)


@pytest.mark.trio
async def test_a_cancelled_transform_is_killed_and_frees_its_slot(photo: bytes) -> None:
    limiter = trio.CapacityLimiter(1)
    # Minutes of work (67 MP, wide blur) and no time limit to speak of: only
    # the cancellation can stop it within the deadline below.
    heavy = parse_params("w=8192&h=8192&fit=fill&blur=100")
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: transform_async(photo, heavy, "png", limiter=limiter,
                                        limits=Limits(time_limit_seconds=3600)))
            with trio.fail_after(10):
                while limiter.borrowed_tokens == 0:  # the thread is running
                    await trio.sleep(0.01)
            scope.cancel()
    with trio.fail_after(15):
        while limiter.borrowed_tokens:  # held until the killed thread has stopped
            await trio.sleep(0.01)
    small = await transform_async(photo, parse_params("w=10"), "png", limiter=limiter)
    assert small.width == 10


@pytest.mark.trio
async def test_the_default_limiter_is_one_per_run_and_sized_by_cores() -> None:
    limiter = default_limiter()
    assert limiter is default_limiter()
    assert limiter.total_tokens == default_concurrency() >= 1
