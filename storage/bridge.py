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
import math
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
        # Set while serve_trio_calls runs: asyncio->trio calls then become
        # trio tasks in its nursery instead of one worker thread each.
        self._calls: tuple[trio.MemorySendChannel[Any], trio.lowlevel.TrioToken] | None = None

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
            value = await self._submit(fn(*args, **kwargs), self._base_context)
        return value

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
            task: asyncio.Task[T] = loop.create_task(
                coro, context=context)  # type: ignore[arg-type]
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

    async def serve_trio_calls(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve :meth:`call_trio` / :meth:`call_trio_soon` as tasks of this nursery.

        Run it as a trio task (a node runs it while its SFTP listener lives).
        Without it, calls fall back to one executor thread per call.  With it,
        a call costs two loop wake-ups and no thread: asyncio enqueues the job
        through ``TrioToken.run_sync_soon``; the trio side runs it in its own
        cancel scope and hands the outcome back with ``call_soon_threadsafe``.
        """
        send, recv = trio.open_memory_channel[Any](math.inf)
        token = trio.lowlevel.current_trio_token()
        self._trio_token = token
        self._calls = (send, token)
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                async with recv:
                    async for job in recv:
                        nursery.start_soon(_run_trio_job, *job)
        finally:
            self._calls = None
            send.close()

    def call_trio_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """From asyncio code: start ``fn(*args)`` in trio now and return an
        asyncio future of its result.  Cancelling the future cancels the trio
        task.  Needs :meth:`serve_trio_calls` to be running."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        calls = self._calls
        if calls is None:
            fut.set_exception(BridgeClosed("no trio call server is running"))
            return fut
        send, token = calls
        scope = trio.CancelScope()

        def enqueue() -> None:  # runs in the trio thread
            try:
                send.send_nowait((fn, args, fut, loop, scope))
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                _deliver(loop, fut, outcome.Error(BridgeClosed("the trio call server stopped")))

        def on_done(f: asyncio.Future[Any]) -> None:
            if f.cancelled():
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(scope.cancel)

        try:
            token.run_sync_soon(enqueue)
        except trio.RunFinishedError:
            fut.set_exception(BridgeClosed("the trio run has finished"))
            return fut
        fut.add_done_callback(on_done)
        return fut

    async def call_trio(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """From asyncio code: run the trio coroutine function ``fn`` in the
        bound trio run and await its result without blocking the loop."""
        if self._calls is not None:
            return await self.call_trio_soon(fn, *args)
        if self._trio_token is None:
            raise BridgeClosed("no trio run is bound to this bridge")
        loop = asyncio.get_running_loop()
        token = self._trio_token
        return await loop.run_in_executor(
            None, lambda: trio.from_thread.run(fn, *args, trio_token=token)
        )


def _deliver(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any], result: Any) -> None:
    """Hand an outcome to an asyncio future from any thread (if still wanted)."""

    def settle() -> None:
        if fut.done():
            return
        if isinstance(result, outcome.Error):
            fut.set_exception(result.error)
        else:
            fut.set_result(result.value)

    with contextlib.suppress(RuntimeError):  # the loop is already closed
        loop.call_soon_threadsafe(settle)


async def _run_trio_job(
    fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], fut: asyncio.Future[Any],
    loop: asyncio.AbstractEventLoop, scope: trio.CancelScope,
) -> None:
    result: Any = outcome.Error(BridgeClosed("cancelled on the trio side"))
    try:
        with scope:
            try:
                result = outcome.Value(await fn(*args))
            except Exception as exc:
                result = outcome.Error(exc)
    finally:
        # Always settle the future, even when the whole nursery is cancelled,
        # so no asyncio caller waits forever.
        _deliver(loop, fut, result)
