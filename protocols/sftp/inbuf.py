"""An SSH connection's input buffer that drops consumed bytes without copying.

asyncssh keeps the bytes received on a connection in one ``bytes`` object
and, for every packet it parses, replaces it with the slice after the packet
header and again after the packet (``self._inpbuf = self._inpbuf[n:]``).
A socket read brings up to 256 KiB, eight 32 KiB SFTP writes of an upload:
each packet copied the rest of the read twice, about eight times the bytes
received.  py-spy put those two slices at 17 % of the asyncio thread's
samples of a 256 MiB put.

:class:`InputBuffer` stands in for that ``bytes`` object: taking the tail
(``buf[n:]``) only moves an offset, while the head slices asyncssh takes
(the packet header, the packet, its MAC) stay real ``bytes`` copies of just
those bytes.  Appending copies only what is left over (at most part of one
packet) and the new data.  The whole node's CPU for a 64 MiB put went down
less than py-spy suggested: 0.983 of the code before (same run, alternated,
6 runs each), the copies being memcpy at memory speed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, SupportsIndex

import asyncssh

# From how many buffered bytes an InputBuffer pays: a socket read of a bulk
# transfer brings up to 256 KiB, a request of a small one a few hundred bytes.
BIG_INPUT = 64 * 1024


class InputBuffer:
    """Bytes received and not yet parsed: ``data[pos:]``."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes = b"", pos: int = 0) -> None:
        self._data = data
        self._pos = pos

    def __len__(self) -> int:
        return len(self._data) - self._pos

    def __bool__(self) -> bool:
        return len(self._data) > self._pos

    def __add__(self, more: bytes) -> InputBuffer:
        if self._pos >= len(self._data):
            return InputBuffer(more)  # nothing left over: no copy
        with memoryview(self._data) as view:
            return InputBuffer(b"".join((view[self._pos:], more)))

    def __getitem__(self, index: slice) -> Any:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("InputBuffer only takes contiguous slices")
        start, stop, _ = index.indices(len(self))
        if index.stop is None:
            return InputBuffer(self._data, self._pos + start)  # the tail: no copy
        return self._data[self._pos + start:self._pos + max(start, stop)]

    def find(self, sub: bytes, start: SupportsIndex = 0,
             end: SupportsIndex | None = None) -> int:
        """As ``bytes.find`` on the unparsed bytes."""
        stop = len(self) if end is None else min(int(end), len(self))
        found = self._data.find(sub, self._pos + int(start), self._pos + stop)
        return found - self._pos if found >= 0 else -1

    def tobytes(self) -> bytes:
        """The unparsed bytes, as ``bytes``."""
        return self._data[self._pos:]

def install(conn: asyncssh.SSHServerConnection,
            before_parse: Callable[[Any], None] | None = None) -> None:
    """Have a new connection keep what it received in an :class:`InputBuffer`
    whenever that is big (from its owner's ``connection_made``, before any
    byte was received).  ``before_parse(conn)`` runs whenever data arrived,
    before asyncssh parses it: between two packets.

    Small exchanges keep asyncssh's plain ``bytes``: the buffer's Python-level
    methods cost more than copying a few hundred bytes (1,000 x 4 KiB puts
    and gets took 7 % more node CPU with an InputBuffer on every read).
    """
    c: Any = conn  # asyncssh internals: _inpbuf, _recv_data
    recv_data = c._recv_data

    def data_received(data: bytes, datatype: Any = None) -> None:
        # What SSHConnection.data_received does (append, parse), with the
        # buffer's type chosen by its size.
        held = c._inpbuf
        if len(held) + len(data) >= BIG_INPUT:
            c._inpbuf = (held if isinstance(held, InputBuffer) else InputBuffer(held)) + data
        else:
            c._inpbuf = (held.tobytes() if isinstance(held, InputBuffer) else held) + data
        if before_parse is not None:
            before_parse(c)
        recv_data()

    c.data_received = data_received
