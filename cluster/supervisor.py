"""A node's secondary worker processes: started, watched, restarted, stopped.

The primary process (cluster/node.py) runs one :class:`Supervisor`.  Each
secondary is ``python -m cluster.cli serve --worker-index I --worker-link DIR``
with the primary's config file and environment; it serves the client ports
alongside the primary (SO_REUSEPORT) and nothing else.

* Start: the primary starts its secondaries once its own listeners are up and
  prints ``[node] ready`` only after each secondary printed its ready line.
  A secondary that exits before it was ever ready fails the node's start
  (a bad setting would fail every restart the same way).
* A secondary that dies later is logged and restarted, after a back-off that
  doubles from 0.5 s to 30 s while restarts keep failing fast.
* Stop: the primary's SIGTERM/SIGINT is forwarded; each secondary drains its
  connections as the primary does; one still running after the grace period
  is killed.
* If the primary dies, its end of each secondary's stdin pipe closes and the
  secondary shuts down by itself (cluster/node.py watches for that EOF).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from cluster.worker_link import LINK_SOCKET

# How long a secondary may take to print its ready line.
READY_DEADLINE = 60.0
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
# A secondary that ran this long before dying restarts after the first back-off again.
STABLE_AFTER = 30.0
# Beyond the graceful drain, how long a stopping secondary gets before SIGKILL.
STOP_SLACK = 5.0


# A link directory younger than this is never taken for a dead node's: its
# primary may not have bound its socket yet.
STALE_LINK_AGE = 60.0


def make_link_dir(node_id: str) -> str:
    """A fresh directory for the Unix sockets between a node's processes,
    only this user may enter (a data dir's path can be too long for a
    socket's), after removing those that primaries killed before they could
    clean up left behind."""
    prefix = f"cloudstorage-{node_id}-"
    remove_stale_link_dirs(Path(tempfile.gettempdir()), prefix)
    return tempfile.mkdtemp(prefix=prefix)


def remove_stale_link_dirs(parent: Path, prefix: str, *, min_age: float = STALE_LINK_AGE) -> int:
    """Remove this user's ``parent/prefix*`` link directories whose socket
    no process listens on any more; returns how many."""
    removed = 0
    for path in parent.glob(f"{prefix}*"):
        try:
            info = path.stat()
        except OSError:
            continue
        if info.st_uid != os.getuid() or time.time() - info.st_mtime < min_age:
            continue
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(path / LINK_SOCKET))
        except OSError:  # refused or absent: its primary is gone
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
        finally:
            sock.close()
    return removed


class WorkerStartError(Exception):
    """A secondary worker process exited before it was ready."""


def ready_line(node_id: str, index: int) -> str:
    """The line a secondary prints once it serves (read by the supervisor)."""
    return f"[{node_id}] worker {index} ready"


def _describe(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class Supervisor:
    """Runs workers ``1..count-1`` of one node (worker 0 is the primary itself)."""

    def __init__(self, node_id: str, count: int, argv: Callable[[int], list[str]],
                 *, grace: float) -> None:
        self.node_id = node_id
        self.indexes = range(1, count)
        self._argv = argv
        self._grace = grace
        self._procs: dict[int, trio.Process] = {}
        self._stopping = trio.Event()
        self.restarts = 0

    def pids(self) -> dict[int, int]:
        """The running secondaries' process ids, by worker index."""
        return {i: p.pid for i, p in self._procs.items()}

    def _pid(self, index: int) -> int | None:
        proc = self._procs.get(index)
        return proc.pid if proc is not None else None

    def _log(self, message: str) -> None:
        print(f"[{self.node_id}] {message}", flush=True)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Start every secondary, report started once all are ready, then keep
        them running until :meth:`stop`."""
        ready = {i: trio.Event() for i in self.indexes}
        async with trio.open_nursery() as nursery:
            for i in self.indexes:
                nursery.start_soon(self._keep, i, ready[i])
            with trio.fail_after(READY_DEADLINE):
                for event in ready.values():
                    await event.wait()
            task_status.started()

    async def _keep(self, index: int, first_ready: trio.Event) -> None:
        if self._stopping.is_set():
            first_ready.set()
            return
        backoff = BACKOFF_FIRST
        ready = first_ready
        while not self._stopping.is_set():
            started = trio.current_time()
            code = await self._run_once(index, ready)
            if self._stopping.is_set():
                first_ready.set()  # stopped while starting: nobody waits for it now
                return
            if not first_ready.is_set():
                raise WorkerStartError(
                    f"worker {index} exited before it was ready ({_describe(code)})")
            if trio.current_time() - started > STABLE_AFTER:
                backoff = BACKOFF_FIRST
            self._log(f"worker {index} exited unexpectedly ({_describe(code)}); "
                      f"restarting it in {backoff:g} s")
            self.restarts += 1
            with trio.move_on_after(backoff):
                await self._stopping.wait()
            backoff = min(backoff * 2, BACKOFF_MAX)
            ready = trio.Event()

    async def _run_once(self, index: int, ready: trio.Event) -> int | None:
        # stdin is a pipe nobody writes to: its end of file tells the
        # secondary that the primary is gone.  A session of its own: a
        # terminal's Ctrl-C reaches the primary alone, which forwards one
        # SIGTERM (a second signal would make the secondary stop at once).
        proc = await trio.lowlevel.open_process(
            self._argv(index), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            start_new_session=True)
        self._procs[index] = proc
        try:
            async with trio.open_nursery() as nursery:
                assert proc.stdout is not None
                nursery.start_soon(self._pump, proc.stdout, index, ready)
                await proc.wait()
            return proc.returncode
        finally:
            self._procs.pop(index, None)
            if proc.returncode is None:
                proc.kill()
                with trio.CancelScope(shield=True):
                    await proc.wait()
            if proc.stdin is not None:
                with trio.CancelScope(shield=True):
                    await proc.stdin.aclose()

    async def _pump(self, stdout: trio.abc.ReceiveStream, index: int, ready: trio.Event) -> None:
        """Copy the secondary's output to ours, noticing its ready line."""
        marker = ready_line(self.node_id, index).encode()
        buffer = b""
        while data := await stdout.receive_some(65536):
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip() == marker:
                    if self.restarts:
                        self._log(f"worker {index} serving again (pid {self._pid(index)})")
                    ready.set()
                    continue
                sys.stdout.buffer.write(line + b"\n")
            sys.stdout.flush()
        if buffer:
            sys.stdout.buffer.write(buffer + b"\n")
            sys.stdout.flush()

    def begin_stop(self) -> None:
        """Forward the shutdown to every secondary (SIGTERM) and restart none."""
        self._stopping.set()
        for proc in list(self._procs.values()):
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)

    async def stop(self) -> None:
        """:meth:`begin_stop`, then wait until every secondary exited (killing
        those still running past the graceful drain)."""
        self.begin_stop()
        with trio.move_on_after(self._grace + STOP_SLACK):
            for proc in list(self._procs.values()):
                await proc.wait()
        for proc in list(self._procs.values()):
            if proc.returncode is None:
                self._log(f"worker pid {proc.pid} did not stop in time: killed")
                proc.kill()
                await proc.wait()
