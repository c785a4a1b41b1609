"""A node's hot writes, committed by its primary process for all its processes.

With several worker processes (cluster/supervisor.py) on one SQLite file,
each process writing through its own connection costs far more than the
writes themselves: a connection that finds the file changed by another one
drops its whole page cache, so every transaction starts cold.  Measured
with two processes taking turns (PutObject 4 KiB overwrites, c=16): the
version UPDATE went from 26 to 85-113 us, the account UPDATE from 8 to
31-41 us, COMMIT to 200 us, and a PUT cost 700 us of CPU instead of 370 us.
Relayed, a PUT costs 430-465 us (the pickles and the socket), and the
node took 2,650-2,750 PUTs/s instead of 1,700-2,400 (bench/s3_bench.py's
load generator on the same two cores).  That is no more than one process
takes: the primary, which also serves its share of the connections, runs
at 98% of a core while the secondary waits on it at 28%.  A primary
serving no S3 client at all (an experiment, two serving secondaries) did
no better, 2,400-2,650 PUTs/s with no process saturated: with 16
connections a relayed PUT waits on the scheduling rounds of two busy
event loops, so small writes are bound by that latency, not by CPU.

So a secondary sends its object commits and deletes to the primary, whose
group-commit writer (storage/sqlite_writer.py) runs them with its own, joining
them with its own units in the same transactions.  Only unit-of-work
functions marked :func:`relayable` travel: module-level functions whose
arguments pickle and that read no context variable (the origin of their
events is an argument).  A list argument is an out-parameter (a commit
appends its events to one): its contents come back with the result.
Everything else a secondary writes goes through its own writer, which is
correct, only slower.

On PostgreSQL too (:meth:`storage.db.Database.write_many` hands a batch to
:mod:`storage.pg_direct`'s group commit at once): every PutObject updates
its account's row, so two processes' group transactions waited for each
other's row lock (15 % of the writer backends' time in pg_stat_activity
samples, PUT 4 KiB c=16) and each paid its own BEGIN and COMMIT.  With one
writer per node, alternated A/B runs measured the node's CPU per PUT at
88-92 % and PostgreSQL's at 82-84 % of two writers, PUTs/s at 104-119 %.

Wire format, both ways: a 4-byte big-endian length and a pickle.  Request
``(id, module, qualname, args, kwargs)``; answer ``(id, ok, value,
out_lists)``.  The socket lives in the node's link directory, which only
the node's user may enter: the two ends are the same user's processes.
"""

from __future__ import annotations

import importlib
import logging
import pickle
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import outcome
import trio

from storage.errors import ServiceUnavailable

log = logging.getLogger("cloudstorage.db")

F = TypeVar("F", bound=Callable[..., Any])

_RELAYABLE = "__relayable__"
_HEADER = struct.Struct(">I")
# Largest frame accepted: a commit's arguments are a few kilobytes (a 4 KiB
# object is stored inline, and more is never inline).
MAX_FRAME = 16 * 1024 * 1024
# Most requests one group commit of the relay joins.
WRITE_BATCH = 256


def relayable(fn: F) -> F:
    """Mark a unit-of-work function a secondary may have the primary run."""
    setattr(fn, _RELAYABLE, True)
    return fn


def is_relayable(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` was marked with :func:`relayable`."""
    return bool(getattr(fn, _RELAYABLE, False))


class LinkLost(ServiceUnavailable):
    """The link to the node's primary process broke before the answer came."""


class _Link:
    """A connected non-blocking Unix socket carrying length-prefixed pickles.

    Read and written with trio's low-level waits and no checkpoint when the
    call completes at once (the usual case), as protocols/http_server.py
    does: every scheduling round a relayed commit waits for is a round its
    client waits too.  Frames sent by several tasks go out whole and in
    order: one task at a time writes, the others append to its buffer.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._buf = bytearray()
        self._out = bytearray()
        self._sending = False

    async def send(self, frame: bytes) -> None:
        """Send ``frame`` (or leave it to the task already sending)."""
        self._out += frame
        if self._sending:
            return
        self._sending = True
        try:
            while self._out:
                try:
                    sent = self.sock.send(self._out)
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(self.sock)
                    continue
                except OSError as exc:
                    raise trio.BrokenResourceError(f"write relay: {exc}") from exc
                del self._out[:sent]
        finally:
            self._sending = False

    async def _receive_some(self) -> bytes:
        while True:
            try:
                return self.sock.recv(262144)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self.sock)
            except OSError as exc:
                raise trio.BrokenResourceError(f"write relay: {exc}") from exc

    def close(self) -> None:
        self.sock.close()

    async def read(self) -> Any:
        """The next object; None at end of stream."""
        batch = await self.read_batch(1)
        return batch[0] if batch else None

    async def read_batch(self, most: int) -> list[Any]:
        """The objects whose bytes have arrived (at least one, at most
        ``most``, waiting for the first); empty at end of stream."""
        while True:
            batch: list[Any] = []
            while len(batch) < most and (value := self._take()) is not _NOTHING:
                batch.append(value)
            if batch:
                return batch
            chunk = await self._receive_some()
            if not chunk:
                return []
            self._buf += chunk

    def _take(self) -> Any:
        if len(self._buf) < _HEADER.size:
            return _NOTHING
        (size,) = _HEADER.unpack_from(self._buf)
        if size > MAX_FRAME:
            raise ValueError(f"write relay: frame of {size} bytes")
        end = _HEADER.size + size
        if len(self._buf) < end:
            return _NOTHING
        data = bytes(self._buf[_HEADER.size:end])
        del self._buf[:end]
        return pickle.loads(data)


_NOTHING = object()


def _frame(value: Any) -> bytes:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def _resolve(module: str, qualname: str) -> Callable[..., Any]:
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not is_relayable(target):
        raise PermissionError(f"{module}.{qualname} is not a relayable unit of work")
    fn: Callable[..., Any] = target
    return fn


# Database.write_many's shape: [(fn, args, kwargs)] -> [outcome], in order.
WriteMany = Callable[[list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]],
                     Awaitable[list[outcome.Outcome]]]


class WriteRelayServer:
    """The primary's end: runs what its secondaries send on ``write_many``.

    Each connection's task reads what has arrived, commits it as one group
    and writes the answers, without another task in between: every
    scheduling round of a busy primary a relayed commit waits for is a
    round its secondary's client waits too.
    """

    def __init__(self, write_many: WriteMany) -> None:
        self._write_many = write_many

    async def serve(self, path: str, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on the Unix socket ``path`` until cancelled."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            listener.listen(16)
            listener.setblocking(False)
            task_status.started()
            async with trio.open_nursery() as nursery:
                while True:
                    await trio.lowlevel.wait_readable(listener)
                    try:
                        conn, _ = listener.accept()
                    except BlockingIOError:
                        continue
                    nursery.start_soon(self._handle, _Link(conn))
        finally:
            listener.close()

    async def _handle(self, link: _Link) -> None:
        try:
            while requests := await link.read_batch(WRITE_BATCH):
                await link.send(b"".join(await self._run(requests)))
        except (trio.BrokenResourceError, ValueError, pickle.UnpicklingError) as exc:
            log.warning("write relay link closed: %s", exc)
        finally:
            link.close()

    async def _run(self, requests: list[tuple[Any, ...]]) -> list[bytes]:
        calls, answers = [], []
        for ident, module, qualname, args, kwargs in requests:
            try:
                calls.append((ident, (_resolve(module, qualname), args, kwargs)))
            except Exception as exc:
                answers.append(_answer(ident, outcome.Error(exc), args))
        results = await self._write_many([call for _, call in calls]) if calls else []
        for (ident, (_, args, _)), result in zip(calls, results, strict=True):
            answers.append(_answer(ident, result, args))
        return answers


def _answer(ident: int, result: outcome.Outcome, args: tuple[Any, ...]) -> bytes:
    """The answer frame: the outcome and the list arguments' contents."""
    outs = [(i, arg) for i, arg in enumerate(args) if type(arg) is list]
    ok = isinstance(result, outcome.Value)
    value = result.value if isinstance(result, outcome.Value) else (
        result.error if isinstance(result, outcome.Error) else None)
    try:
        return _frame((ident, ok, value, outs))
    except Exception as exc:  # an error that does not pickle: say what it was
        return _frame((ident, False, ServiceUnavailable(
            "internal error", detail=f"{type(value).__name__}: {value} ({exc})"), outs))


class WriteRelayClient:
    """A secondary's end: has the primary run relayable writes."""

    def __init__(self) -> None:
        self._next = 0
        self._waiting: dict[int, tuple[trio.Event, list[Any]]] = {}
        self._link: _Link | None = None

    @property
    def connected(self) -> bool:
        """Whether writes go to the primary now."""
        return self._link is not None

    async def run(self, path: str, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Connect to the primary's relay at ``path`` and serve until cancelled."""
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        try:
            await sock.connect(path)
        except BaseException:
            sock.close()
            raise
        link = _Link(socket.socket(fileno=sock.detach()))
        try:
            self._link = link
            task_status.started()
            await self._receive(link)
        except (trio.BrokenResourceError, ValueError, pickle.UnpicklingError) as exc:
            log.warning("write relay to the primary lost: %s", exc)
        finally:
            self._link = None
            self._fail_waiting()
            link.close()

    async def _receive(self, link: _Link) -> None:
        while (answer := await link.read()) is not None:
            ident, ok, value, outs = answer
            waiter = self._waiting.pop(ident, None)
            if waiter is None:
                continue
            done, slot = waiter
            slot.append((outcome.Value(value) if ok else outcome.Error(value), outs))
            done.set()

    def _fail_waiting(self) -> None:
        waiting, self._waiting = self._waiting, {}
        for done, slot in waiting.values():
            slot.append((outcome.Error(LinkLost(
                "The node's primary process went away; please retry.", cause="database",
                detail="write relay lost before the answer came")), []))
            done.set()

    async def write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run the relayable unit of work ``fn(*args, **kwargs)`` on the primary.

        Waits, shielded from cancellation like a local write: the caller
        must learn whether its write committed.  List arguments get the
        contents the unit left in them.
        """
        link = self._link
        if link is None:
            raise LinkLost("The node's primary process is not reachable; please retry.",
                           cause="database", detail="write relay not connected")
        self._next += 1
        ident = self._next
        done, slot = trio.Event(), list[Any]()
        frame = _frame((ident, fn.__module__, fn.__qualname__, args, kwargs))
        self._waiting[ident] = (done, slot)
        with trio.CancelScope(shield=True):
            try:
                await link.send(frame)
            except trio.BrokenResourceError:
                self._waiting.pop(ident, None)
                raise LinkLost("The node's primary process went away; please retry.",
                               cause="database", detail="write relay closed") from None
            await done.wait()
        result, outs = slot[0]
        for index, contents in outs:
            args[index][:] = contents
        return result.unwrap()
