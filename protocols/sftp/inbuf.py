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
(the packet header, the packet, its MAC) are ``bytes`` copies of just those
bytes -- or, for a packet's body inside one read, a view.  Appending copies
nothing.  The whole node's CPU for a 64 MiB put went down
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
# From what size a slice inside one read is a view rather than a copy.  The
# only such slice asyncssh takes is a packet's body, handed straight to its
# decryption (every cipher's accepts any buffer; AES-GCM's then joins it
# with the packet's first block and MAC, which copied it once more).
BIG_SLICE = 4096


class InputBuffer:
    """Bytes received and not yet parsed: the reads ``parts`` joined, from
    offset ``pos`` of the first.

    The reads are not joined: a packet cut between two reads is copied
    when asyncssh slices it out (which copies it anyway), the rest of the
    reads never (joining what was left over with each new read copied
    every received byte once more: 9 % of the asyncio thread's samples of
    a 128 MiB put).
    """

    __slots__ = ("_len", "_parts", "_pos")

    def __init__(self, parts: list[bytes], pos: int = 0, length: int | None = None) -> None:
        self._parts = parts
        self._pos = pos
        self._len = sum(len(p) for p in parts) - pos if length is None else length

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def __add__(self, more: bytes) -> InputBuffer:
        if not self._len:
            return InputBuffer([more], 0, len(more))
        return InputBuffer([*self._parts, more], self._pos, self._len + len(more))

    def __getitem__(self, index: slice) -> Any:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("InputBuffer only takes contiguous slices")
        start, stop, _ = index.indices(self._len)
        if index.stop is None:
            return self._tail(start)
        return self._copy(start, max(start, stop))

    def _tail(self, skip: int) -> InputBuffer:
        """Everything after the first ``skip`` bytes, without a copy."""
        parts, pos = self._parts, self._pos + skip
        first = 0
        while first < len(parts) - 1 and pos >= len(parts[first]):
            pos -= len(parts[first])
            first += 1
        return InputBuffer(parts[first:] if first else parts, pos, self._len - skip)

    def _copy(self, start: int, stop: int) -> bytes | memoryview:
        """Bytes ``start:stop`` of the unparsed ones: a view of a read when
        they are a packet's body within it (see :data:`BIG_SLICE`)."""
        head = self._parts[0]
        lo, hi = self._pos + start, self._pos + stop
        if hi <= len(head):
            return memoryview(head)[lo:hi] if hi - lo >= BIG_SLICE else head[lo:hi]
        pieces = []
        for part in self._parts:
            if lo < len(part) and hi > 0:
                pieces.append(part[max(lo, 0):min(hi, len(part))])
            lo -= len(part)
            hi -= len(part)
        return b"".join(pieces)

    def find(self, sub: bytes, start: SupportsIndex = 0,
             end: SupportsIndex | None = None) -> int:
        """As ``bytes.find`` on the unparsed bytes (only the version line
        is looked for this way: a short buffer)."""
        return self.tobytes().find(sub, int(start), self._len if end is None else int(end))

    def tobytes(self) -> bytes:
        """The unparsed bytes, as ``bytes``."""
        return bytes(self._copy(0, self._len))


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
            c._inpbuf = (held if isinstance(held, InputBuffer) else InputBuffer([held])) + data
        else:
            c._inpbuf = (held.tobytes() if isinstance(held, InputBuffer) else held) + data
        if before_parse is not None:
            before_parse(c)
        recv_data()

    c.data_received = data_received
