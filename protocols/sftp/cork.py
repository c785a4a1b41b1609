"""Coalesce what one pass of the event loop sends on an SSH connection.

asyncssh answers SFTP requests one at a time and writes every reply to the
socket at once.  Each ``send`` drops and re-takes the GIL (behind the trio
thread and the hashing threads of a node under load) and, on loopback, runs
the receiver's network stack and wakes the client: py-spy put a fifth of
the asyncio thread's samples of a 256 MiB put, and most of its busy samples
of 1,000 small gets, inside ``_SelectorSocketTransport.write``.

:class:`CorkedTransport` sits between asyncssh and its socket transport: a
write is appended to a buffer and the buffer goes out in one ``send`` from a
callback queued behind the work already runnable -- the requests decoded
from the same incoming bytes are answered first, as OpenSSH's sshd batches
what its sftp-server wrote before it writes to the socket.  Nothing waits
for more data: the flush runs in the very next pass of the loop.  Measured
against the same code without it (same run, 1,000 x 4 KiB gets, medians of
5): 7 % less CPU in the node and 14 % less in the OpenSSH client.
"""

from __future__ import annotations

from typing import Any

import asyncssh


class CorkedTransport:
    """A socket transport whose writes within one loop pass go out as one."""

    def __init__(self, transport: Any, loop: Any) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._scheduled = False

    def write(self, data: bytes) -> None:
        """Queue ``data``; it is sent with whatever else this pass writes."""
        self._pending.append(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Send what is queued, in one write."""
        self._scheduled = False
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        """Send what is queued (a disconnect message, say), then close."""
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        """Drop what is queued and close at once."""
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        # Everything else (get_extra_info, is_closing, pause_reading, ...)
        # is the socket transport's own.
        return getattr(self._transport, name)


def cork(conn: asyncssh.SSHServerConnection) -> None:
    """Put a :class:`CorkedTransport` under a new connection (from its
    owner's ``connection_made``, before anything is sent but the version)."""
    transport: Any = conn._transport  # asyncssh internal, as is its _loop
    if transport is not None and not isinstance(transport, CorkedTransport):
        conn._transport = CorkedTransport(transport, conn._loop)  # type: ignore[assignment]
