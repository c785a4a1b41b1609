"""Single-flight: concurrent requests for the same cache key compute once.

When a popular image's cached variant is missing (first request, expiry, a
new ETag), a burst of identical requests would each decode and encode the
same source. :class:`SingleFlight` lets the first caller compute and makes
the others wait for its result. trio primitives only; nothing is remembered
once a computation ends (that is the result cache's job).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar, cast

import trio

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class _Call(Generic[T]):
    """One computation in flight and its outcome, once it has one."""

    def __init__(self) -> None:
        self.done = trio.Event()
        self.value: T | None = None
        self.error: Exception | None = None
        self.abandoned = False  # the leader was cancelled before an outcome


class SingleFlight(Generic[K, T]):
    """Run at most one computation per key at a time; every concurrent
    caller of the same key gets its result, or its exception.

    If the caller that is computing is cancelled, the computation is
    abandoned and one of the waiting callers starts it again, so one client
    hanging up never fails the others.
    """

    def __init__(self) -> None:
        self._calls: dict[K, _Call[T]] = {}

    def in_flight(self) -> int:
        """How many keys are being computed right now."""
        return len(self._calls)

    async def run(self, key: K, compute: Callable[[], Awaitable[T]]) -> T:
        """``await compute()``, unless a call for ``key`` is already running:
        then wait for that one and share its outcome."""
        while True:
            call = self._calls.get(key)
            if call is None:
                return await self._lead(key, compute)
            await call.done.wait()
            if call.abandoned:
                continue
            if call.error is not None:
                raise call.error
            return cast(T, call.value)

    async def _lead(self, key: K, compute: Callable[[], Awaitable[T]]) -> T:
        call: _Call[T] = _Call()
        self._calls[key] = call
        try:
            call.value = await compute()
            return call.value
        except Exception as exc:
            call.error = exc
            raise
        except BaseException:  # trio.Cancelled, KeyboardInterrupt: no outcome to share
            call.abandoned = True
            raise
        finally:
            del self._calls[key]
            call.done.set()
