"""SSH sessions of the SFTP port: the SFTP subsystem and a few exec commands.

asyncssh's stock session would run its own SFTP packet handler, which refuses
a WRITE request carrying bytes after its data (``SSH_FX_BAD_MESSAGE``,
"Unexpected data at end of packet").  pkg/sftp before 1.13.6 -- rclone up to
1.62, Debian 12's rclone 1.60 -- sends exactly that for the last, short piece
of every file over 32 KiB uploaded with concurrent writes: the packet length
counts the whole 32 KiB buffer while the data string holds only the bytes
read.  OpenSSH's sftp-server parses the fields it needs and discards the
rest of any request, so those uploads work there; :class:`CompatSFTPHandler`
does the same for WRITE.

Sessions are created by the connection's :class:`asyncssh.SSHServer`
(``session_requested``), so the connection's :class:`Activity` sees every
request: the listener closes connections idle for ``sftp.idle_timeout_seconds``.
No shell is ever run: an exec request is answered by
:mod:`protocols.sftp.commands`, anything else is refused.

This leans on asyncssh internals (``SFTPServerHandler`` and its packet table,
the stream session's ``_init_sftp_server``); tests/sftp/test_protocol.py and
the rclone tests fail if an asyncssh release changes them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncssh
from asyncssh.constants import MSG_IGNORE
from asyncssh.packet import SSHPacket
from asyncssh.sftp import FXP_WRITE, SFTPServerHandler
from asyncssh.stream import SSHServerStreamSession

log = logging.getLogger("cloudstorage.sftp")

SFTP_VERSION = 3
UNSUPPORTED_EXTENSIONS = frozenset({
    b"hardlink@openssh.com", b"fsync@openssh.com", b"statvfs@openssh.com",
    b"fstatvfs@openssh.com",
})


class Activity:
    """When a connection last finished a request, and how many are running."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.running = 0

    def begin(self) -> None:
        """A request starts (a running request never counts as idle)."""
        self.running += 1

    def end(self) -> None:
        """A request ends: the idle time counts from now."""
        self.running -= 1
        self.last = time.monotonic()

    def touch(self) -> None:
        """Something happened: the idle time counts from now."""
        self.last = time.monotonic()

    def idle_for(self, now: float) -> float:
        """Seconds without any request running (0 while one runs)."""
        return 0.0 if self.running else now - self.last


class _QuietLogger:
    """An SFTP handler's logger with its per-request debug messages dropped
    up front.  asyncssh formats the arguments of every ``debug1`` call (and
    the name and size of every packet) before the logging module drops the
    record: about 4 us a call, several calls per request -- a tenth of what
    asyncssh spends on a small request.  Used only when the asyncssh logger
    did not log DEBUG as the session started."""

    def __init__(self, logger: Any) -> None:
        self._logger = logger

    def debug1(self, *args: Any, **kwargs: Any) -> None:
        return None

    def debug2(self, *args: Any, **kwargs: Any) -> None:
        return None

    def packet(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)  # info, warning, get_child, ...


def _no_packet_log(pkttype: int, pktid: int | None, packet: Any, note: str = "") -> None:
    return None


def quiet_packet_logs(handler: Any) -> None:
    """Drop the per-packet debug logging of an SSH connection or channel up
    front when asyncssh's logger does not log DEBUG.  asyncssh names the
    packet type and formats its size for every packet sent and received
    before its logger drops the record: a few microseconds a packet, as
    much as the rest of a small request's packet handling costs."""
    if not logging.getLogger("asyncssh").isEnabledFor(logging.DEBUG):
        handler.log_received_packet = _no_packet_log
        handler.log_sent_packet = _no_packet_log


def no_ignore_padding(conn: Any) -> None:
    """Stop asyncssh sending an empty ``SSH_MSG_IGNORE`` before every packet
    on a connection whose cipher is not CBC.

    asyncssh precedes each packet after the key exchange with an ignore
    packet, whatever the cipher: RFC 4251 (9.3.1) suggests it against the
    chosen-plaintext attack on CBC, whose next IV is the last ciphertext
    block.  Counter mode, AES-GCM and ChaCha20-Poly1305 have no such IV
    (RFC 4344 made CTR the fix), and OpenSSH sends none.  With one reply
    per request, it doubled the packets a small file costs: padded,
    encrypted and sent here, decrypted and dropped by the client.  A CBC
    connection keeps them (the cipher is looked at for every packet, since
    a rekey may change it).

    ``send_packet`` calls itself for the ignore packet, through the
    instance, so a wrapper that knows it is already sending drops exactly
    that nested call (asyncssh 2.24's ``SSHConnection.send_packet``).
    """
    send = conn.send_packet
    sending = False

    def send_packet(pkttype: int, *args: bytes, handler: Any = None) -> None:
        nonlocal sending
        if sending:
            if pkttype == MSG_IGNORE and "cbc" not in conn.get_extra_info("send_cipher", ""):
                return
            send(pkttype, *args, handler=handler)
            return
        sending = True
        try:
            send(pkttype, *args, handler=handler)
        finally:
            sending = False

    conn.send_packet = send_packet


class _TrailingIgnored(SSHPacket):
    """A request packet whose bytes after the parsed fields are discarded."""

    def check_end(self) -> None:
        return None


async def _process_write_tolerant(handler: SFTPServerHandler, packet: SSHPacket) -> Any:
    # WRITE as OpenSSH's sftp-server reads it: handle, offset, data, and
    # whatever follows (pkg/sftp's stale buffer tail) ignored.  The packet
    # itself is made lenient: a new one over its remaining payload copied
    # every uploaded byte once more (3 % of a big put's asyncio thread).
    packet.__class__ = _TrailingIgnored
    return await SFTPServerHandler._process_write(handler, packet)


class CompatSFTPHandler(SFTPServerHandler):
    """asyncssh's SFTP server handler, tolerant of the requests real clients send,
    reporting every request to the connection's :class:`Activity`."""

    _packet_handlers = {**SFTPServerHandler._packet_handlers, FXP_WRITE: _process_write_tolerant}
    # Not offered: objects have no links, no filesystem statistics, and an
    # upload is durable when its handle is closed (the server refuses these).
    _extensions = [(name, data) for name, data in SFTPServerHandler._extensions
                   if name not in UNSUPPORTED_EXTENSIONS]

    def __init__(self, server: asyncssh.SFTPServer, reader: asyncssh.SSHReader[bytes],
                 writer: asyncssh.SSHWriter[bytes], activity: Activity) -> None:
        super().__init__(server, reader, writer, SFTP_VERSION)
        self.activity = activity
        self._quiet = not self._logger.isEnabledFor(logging.DEBUG)
        if self._quiet:
            self._logger = _QuietLogger(self._logger)  # type: ignore[assignment]

    def log_received_packet(self, pkttype: int, pktid: int | None, packet: Any,
                            note: str = "") -> None:
        if not self._quiet:
            super().log_received_packet(pkttype, pktid, packet, note)

    def log_sent_packet(self, pkttype: int, pktid: int | None, packet: Any,
                        note: str = "") -> None:
        if not self._quiet:
            super().log_sent_packet(pkttype, pktid, packet, note)

    async def _cleanup(self, exc: Exception | None) -> None:
        # The channel's own state cannot tell a finished session from a cut
        # one (a lost connection leaves it "open"): say it before asyncssh
        # closes the handles still open.
        ending = getattr(self._server, "session_ending", None)
        if ending is not None:
            ending()
        await super()._cleanup(exc)

    async def _process_packet(self, pkttype: int, pktid: int, packet: SSHPacket) -> None:
        self.activity.begin()
        try:
            await super()._process_packet(pkttype, pktid, packet)
        finally:
            self.activity.end()


ExecHandler = Callable[
    [str, asyncssh.SSHReader[bytes], asyncssh.SSHWriter[bytes], asyncssh.SSHWriter[bytes]],
    Awaitable[int],
]


class SSHSession(SSHServerStreamSession[bytes]):
    """One session channel: the ``sftp`` subsystem or one exec command."""

    def __init__(
        self, sftp_factory: Callable[[asyncssh.SSHServerChannel], asyncssh.SFTPServer],
        run_command: ExecHandler, activity: Activity,
    ) -> None:
        super().__init__(None, sftp_factory, SFTP_VERSION, False)  # type: ignore[arg-type]
        self._run_command = run_command
        self._activity = activity

    def shell_requested(self) -> bool:
        return False  # there is no shell

    def exec_requested(self, command: str) -> bool:
        return True  # answered (or refused with a message) by run_command

    def subsystem_requested(self, subsystem: str) -> bool:
        return subsystem == "sftp"

    def session_started(self) -> None:
        chan = self._chan
        conn = self._conn
        assert chan is not None and conn is not None
        chan.set_encoding(None)
        self._encoding = None
        stdin = asyncssh.SSHReader[bytes](self, chan)
        stdout = asyncssh.SSHWriter[bytes](self, chan)
        if chan.get_subsystem() == "sftp":
            # asyncssh hands sessions a line-editor wrapper; the packets are
            # the wrapped channel's.
            quiet_packet_logs(getattr(chan, "_orig_chan", chan))
            server = self._init_sftp_server()
            handler = CompatSFTPHandler(server, stdin, stdout, self._activity)  # type: ignore[arg-type]
            stdin.logger.info("Starting SFTP server")
            conn.create_task(handler.run(), stdin.logger)
            return
        stderr = asyncssh.SSHWriter[bytes](self, chan, asyncssh.EXTENDED_DATA_STDERR)
        conn.create_task(self._exec(chan.get_command() or "", stdin, stdout, stderr),
                         stdin.logger)

    async def _exec(self, command: str, stdin: asyncssh.SSHReader[bytes],
                    stdout: asyncssh.SSHWriter[bytes],
                    stderr: asyncssh.SSHWriter[bytes]) -> None:
        # A command waiting on its stdin is idle: only its storage work (the
        # run_command's own Activity use) and its start and end count.
        self._activity.touch()
        try:
            status = await self._run_command(command, stdin, stdout, stderr)
        except Exception:
            log.exception("SSH command failed: %r", command)
            stderr.write(b"internal error\n")
            status = 1
        self._activity.touch()
        stdout.channel.exit(status)  # type: ignore[attr-defined]  # a server channel
