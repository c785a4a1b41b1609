"""The one place where trio meets asyncio.

Tortoise ORM (with its drivers) and asyncssh only run on asyncio.  Every node
therefore owns exactly one :class:`AsyncioBridge`: a dedicated thread running
an asyncio event loop.  Trio code hands it coroutine *functions* and awaits
the result; asyncio code that must call back into trio uses
:meth:`AsyncioBridge.call_trio`.

Rules that keep this safe (learned the hard way, see ARCHITECTURE.md):

* one unit of work -- in particular one database transaction -- is one
  coroutine on the asyncio side.  Splitting a transaction across two bridge
  calls deadlocks SQLite and silently drops work on PostgreSQL;
* every call runs in a fresh copy of the bridge's *base context*, so context
  variables set by one call (Tortoise's transaction routing) never leak into a
  concurrent call, while state published with :meth:`publish_context` (the
  initialised ORM) is visible to all later calls.

No other module in the project imports asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import outcome
import trio

P = ParamSpec("P")
T = TypeVar("T")


class BridgeClosed(RuntimeError):
    """Raised when a call is made on a bridge that is not running."""


class AsyncioBridge:
    """Runs an asyncio loop in a daemon thread and lets trio await coroutines on it."""

    def __init__(self, name: str = "asyncio-bridge") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._base_context = contextvars.Context()
        self._trio_token: trio.lowlevel.TrioToken | None = None

    # -- lifecycle -------------------------------------------------------

    def start(self) -> None:
        """Start the loop thread; returns once the loop is running."""
        if self._thread is not None:
            return
        ready = threading.Event()
        # An explicit selector loop: immune to any process-wide policy another
        # library may install (trio_asyncio does this).
        loop = asyncio.SelectorEventLoop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread.start()
        ready.wait()
        self._loop = loop
        try:
            self._trio_token = trio.lowlevel.current_trio_token()
        except RuntimeError:
            self._trio_token = None

    def stop(self) -> None:
        """Stop the loop and join its thread (pending calls are cancelled)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = None

        def cancel_all() -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.call_soon(loop.stop)

        loop.call_soon_threadsafe(cancel_all)
        thread.join(timeout=10)
        self._thread = None

    # -- trio -> asyncio -------------------------------------------------

    async def run(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn(*args, **kwargs)`` on the asyncio loop and return its result.

        If the calling trio task is cancelled, the asyncio task is cancelled
        too and this waits (shielded) until it has really finished, so a
        cancelled call never leaves work running behind the caller's back.
        """
        return await self._submit(fn(*args, **kwargs), self._base_context.copy())

    async def publish_context(
        self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``fn`` directly in the base context so its context-variable
        changes (an ORM's initialisation) are seen by every later call."""
        with trio.CancelScope(shield=True):
            return await self._submit(fn(*args, **kwargs), self._base_context)

    async def _submit(self, coro: Awaitable[T], context: contextvars.Context) -> T:
        loop = self._loop
        if loop is None:
            coro.close()  # type: ignore[attr-defined]
            raise BridgeClosed("the asyncio bridge is not running")
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        tasks: list[asyncio.Task[T]] = []
        result: list[outcome.Outcome] = []

        def on_done(task: asyncio.Task[T]) -> None:
            if task.cancelled():
                result.append(outcome.Error(BridgeClosed("cancelled on the asyncio side")))
            elif (exc := task.exception()) is not None:
                result.append(outcome.Error(exc))
            else:
                result.append(outcome.Value(task.result()))
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(done.set)

        def start() -> None:
            task = loop.create_task(coro, context=context)  # type: ignore[arg-type]
            tasks.append(task)
            task.add_done_callback(on_done)

        loop.call_soon_threadsafe(start)
        try:
            await done.wait()
        except trio.Cancelled:
            loop.call_soon_threadsafe(lambda: tasks and tasks[0].cancel())
            with trio.CancelScope(shield=True):
                await done.wait()
            raise
        return result[0].unwrap()

    # -- asyncio -> trio -------------------------------------------------

    def bind_trio(self) -> None:
        """Remember the current trio run so asyncio code can call back into it."""
        self._trio_token = trio.lowlevel.current_trio_token()

    async def call_trio(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """From asyncio code: run the trio coroutine function ``fn`` in the
        bound trio run and await its result without blocking the loop."""
        if self._trio_token is None:
            raise BridgeClosed("no trio run is bound to this bridge")
        loop = asyncio.get_running_loop()
        token = self._trio_token
        return await loop.run_in_executor(
            None, lambda: trio.from_thread.run(fn, *args, trio_token=token)
        )

    def spawn(self, coro_fn: Callable[[], Awaitable[Any]]) -> None:
        """Fire-and-forget an asyncio coroutine (servers' own tasks)."""
        loop = self._loop
        if loop is None:
            raise BridgeClosed("the asyncio bridge is not running")
        loop.call_soon_threadsafe(
            lambda: loop.create_task(coro_fn(), context=self._base_context.copy())  # type: ignore[arg-type]
        )
