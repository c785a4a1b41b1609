"""Background workers of a node: periodic passes with visible, pausable state.

A :class:`Worker` runs one *pass* function every ``interval`` seconds (or at
once when triggered).  Its state -- paused or not, whether a pass is running,
when the last one started and ended, how many failed and why, and the pass's
own progress counters -- is what the admin API and ``cloudstorage workers``
show.  A failing pass is recorded and retried at the next interval; it never
takes the node down.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from storage.errors import ServiceUnavailable

PassFn = Callable[["Worker"], Awaitable[None]]


def _is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` is an outage (ServiceUnavailable), alone or as every
    leaf of the exception group a pass's nursery raised."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_outage(e) for e in exc.exceptions)
    return isinstance(exc, ServiceUnavailable)


class Worker:
    """One periodic background task."""

    def __init__(self, name: str, interval: float, fn: PassFn, *, description: str = "") -> None:
        self.name = name
        self.interval = interval
        self.description = description
        self._fn = fn
        self.paused = False
        self.running = False
        self.runs = 0
        self.errors = 0
        self.last_error: str | None = None
        self.last_started: float | None = None
        self.last_finished: float | None = None
        self.last_duration: float | None = None
        # Counters a pass fills in (e.g. chunks_done / chunks_remaining / bytes_done).
        self.progress: dict[str, Any] = {}
        self._wake = trio.Event()
        self._resumed = trio.Event()
        self._resumed.set()

    def pause(self) -> None:
        """Stop starting new passes (a running pass checks :meth:`checkpoint`)."""
        self.paused = True
        self._resumed = trio.Event()

    def resume(self) -> None:
        """Allow passes again."""
        self.paused = False
        self._resumed.set()

    def trigger(self) -> None:
        """Run a pass now instead of at the end of the interval."""
        self._wake.set()

    async def checkpoint(self) -> None:
        """Called by passes between items: waits while the worker is paused."""
        await self._resumed.wait()
        await trio.lowlevel.checkpoint()

    async def run_once(self) -> None:
        """Run one pass now, recording its outcome."""
        self.running = True
        self.last_started = time.time()
        try:
            await self._fn(self)
        except Exception as exc:  # recorded and shown; the next pass retries
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            # An outage (database, quorum) is logged, rate-limited, where it is
            # detected; a traceback per pass would only repeat it.
            if not _is_outage(exc):
                print(f"[worker {self.name}] pass failed: {self.last_error}\n"
                      f"{traceback.format_exc(limit=4)}", flush=True)
        else:
            self.last_error = None
        finally:
            self.running = False
            self.runs += 1
            self.last_finished = time.time()
            self.last_duration = self.last_finished - self.last_started

    async def run(self, first_delay: float = 0.0) -> None:
        """Loop forever: wait for the interval (or a trigger), then one pass."""
        delay = first_delay
        while True:
            # A timer with an early wake-up, not a poll: trigger() ends it.
            with trio.move_on_after(delay):
                await self._wake.wait()
            self._wake = trio.Event()
            await self._resumed.wait()
            await self.run_once()
            delay = self.interval

    def status(self) -> dict[str, Any]:
        """JSON-ready state."""
        return {
            "name": self.name, "description": self.description,
            "state": "paused" if self.paused else ("running" if self.running else "idle"),
            "interval": self.interval, "runs": self.runs, "errors": self.errors,
            "last_error": self.last_error, "last_started": self.last_started,
            "last_finished": self.last_finished, "last_duration": self.last_duration,
            "progress": dict(self.progress),
        }


class WorkerRegistry:
    """The workers of one node, by name."""

    def __init__(self) -> None:
        self._workers: dict[str, Worker] = {}

    def add(self, worker: Worker) -> Worker:
        """Register a worker (names are unique)."""
        if worker.name in self._workers:
            raise ValueError(f"duplicate worker {worker.name!r}")
        self._workers[worker.name] = worker
        return worker

    def get(self, name: str) -> Worker:
        """The worker called ``name`` (KeyError if unknown)."""
        return self._workers[name]

    def names(self) -> list[str]:
        """Registered worker names."""
        return list(self._workers)

    def status(self) -> list[dict[str, Any]]:
        """Every worker's state."""
        return [w.status() for w in self._workers.values()]

    def pause(self, name: str) -> None:
        """Pause one worker."""
        self.get(name).pause()

    def resume(self, name: str) -> None:
        """Resume one worker."""
        self.get(name).resume()

    def trigger(self, name: str) -> None:
        """Run one worker's pass now."""
        self.get(name).trigger()

    async def run_all(self, *, first_delay: float = 0.0) -> None:
        """Run every worker until cancelled (a child task of the node nursery)."""
        async with trio.open_nursery() as nursery:
            for worker in self._workers.values():
                nursery.start_soon(worker.run, first_delay)
