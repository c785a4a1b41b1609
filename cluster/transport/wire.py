"""Shared parts of the node-to-node transport: limits, errors, signing, framing.

Both ends use these: the request signature and its key, the DELETE nonce ledger,
receiving bodies straight off a socket, and body hashing.
See :mod:`cluster.transport` for the protocol.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import NamedTuple

import trio
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.crypto import derive_key

RECV_SIZE = 4 * 1024 * 1024
MAX_BODY = 64 * 1024 * 1024 + 1024
# Reads of a message's head: a head is at most MAX_HEAD, and whatever body
# comes along with it is copied once more, while the rest of a known-length
# body is received straight into its buffer (receive_rest).  Read with
# RECV_SIZE, a replica's head read took most of a 1 MiB chunk that way.
HEAD_RECV = 64 * 1024
MAX_HEAD = 16 * 1024
# A body up to this size is copied behind its head into one send; a bigger
# one goes out from its own buffer (see send_message).
JOIN_BODY_MAX = 64 * 1024
CLOCK_SKEW = 300.0
# The server closes a keep-alive connection idle this long.
IDLE_TIMEOUT = 75.0
# The client never reuses a pooled connection idle longer than this: well
# under the server's IDLE_TIMEOUT, so a request never races the server's close
# (a request written into a connection the server is closing fails with
# "Broken pipe", and before the pool agreed with the server it was common).
POOL_IDLE_SECONDS = 20.0
# A full disk on the receiver: 507 Insufficient Storage (RFC 4918), so the
# sender can say "disk full" instead of a generic failure.
DISK_FULL = 507


class TransportError(Exception):
    """A peer could not be reached or answered something unexpected."""


class PeerUnreachable(TransportError):
    """No connection to the peer could be opened (refused, no route, timed out)."""


class PeerDiskFull(TransportError):
    """The peer could not store a chunk: its disk is full."""


def transport_key(secret: bytes) -> bytes:
    """The MAC key derived from the cluster secret (never the secret itself)."""
    return derive_key(secret, "transport v1")


class BodyTag(NamedTuple):
    """A body's authentication tag (see :func:`body_tag`), made once per body
    and sent with every request that carries that body."""

    nonce: str  # random 96 bits (hex), one per body: picks the one-time key
    mac: str  # hex GMAC tag of the body under that key
    body: bytes | bytearray | memoryview  # the body it was made for (identity)


def sign(
    key: bytes, method: str, target: str, date: str, node: str, body_sha: str, nonce: str,
    tag_nonce: str = "", tag_mac: str = "",
) -> str:
    """The request signature (hex); the body's tag (see :func:`body_tag`:
    its nonce and MAC) is signed too when the request carries one."""
    msg = f"{method}\n{target}\n{date}\n{node}\n{body_sha}\n{nonce}"
    if tag_mac:
        msg += f"\n{tag_nonce}\n{tag_mac}"
    return hmac.new(key, msg.encode(), hashlib.sha256).hexdigest()


def _body_mac_key(key: bytes, tag_nonce: str) -> AESGCM:
    # A key for one body only (so GCM's fixed nonce below never covers two
    # different messages under it): the random 96-bit tag nonce makes it
    # unique, and only holders of ``key`` can compute it.  The label keeps
    # it apart from signatures (whose messages start "METHOD\n") and from
    # the earlier per-request derivation.
    msg = f"body mac v2\n{tag_nonce}".encode()
    return AESGCM(hmac.new(key, msg, hashlib.sha256).digest())


_GCM_NONCE = bytes(12)


def body_tag(key: bytes, body: bytes | bytearray | memoryview) -> BodyTag:
    """The body's authentication tag: a hex GMAC (AES-256-GCM over no
    plaintext, the body as associated data) under a one-time key.

    Why not SHA-256, which a chunk's id already is: the receiver of a chunk
    used to re-hash every body to check it against the signed hash, and that
    hash was the biggest CPU cost of a replica (0.65 ms per MiB; a 3-node
    PUT 1 MiB paid it on both replicas).  Measured here per MiB not in cache
    (as a body fresh off the socket is): SHA-256 0.65 ms, Poly1305 0.18 ms,
    GMAC 0.105 ms, CRC32C 0.08 ms.  The tag is as strong a check in transit:
    a cryptographic MAC under a key only cluster members can derive, bound
    by each request's HMAC signature (which covers the tag, its nonce, the
    method, target, date, node and request nonce), so neither a flipped bit
    nor an on-path attacker gets other bytes accepted (a CRC32C would catch
    the flipped bit but not the attacker: CRCs are forgeable).  What the
    receiver no longer checks itself is that the bytes hash to the id the
    (authenticated) sender claims; the sender computed that id from the same
    bytes, its own disk trusts it the same way, and every read and every
    scrub still verifies SHA-256 and repairs a bad copy.

    One tag serves every replica of a chunk (the coordinator of a 3-node
    PUT computed two, 0.1 ms a MiB each): the one-time key is drawn per
    *body*, not per request, and sending the same message with the same tag
    twice gives nothing away that once did not.  What must never happen is
    one key tagging two different messages; hence the random nonce per
    call, and the client refuses a tag with any object but ``body``.
    """
    nonce = secrets.token_hex(12)
    mac = _body_mac_key(key, nonce).encrypt(_GCM_NONCE, b"", body)
    return BodyTag(nonce, mac.hex(), body)


def body_mac_ok(
    key: bytes, tag_nonce: str, body: bytes | bytearray | memoryview, tag_hex: str,
) -> bool:
    """Whether ``tag_hex`` is ``body``'s :func:`body_tag` MAC under
    ``tag_nonce`` (constant time)."""
    try:
        tag = bytes.fromhex(tag_hex)
        _body_mac_key(key, tag_nonce).decrypt(_GCM_NONCE, tag, body)
    except (ValueError, InvalidTag):
        return False
    return True


class NonceLedger:
    """Nonces seen within the clock-skew window; refuses any second use."""

    def __init__(self, window: float) -> None:
        self._window = window
        self._seen: dict[str, float] = {}

    def first_use(self, nonce: str, now: float) -> bool:
        """Record ``nonce``; False if it was already used inside the window."""
        if len(self._seen) > 1024:
            cutoff = now - 2 * self._window
            self._seen = {n: t for n, t in self._seen.items() if t >= cutoff}
        if nonce in self._seen:
            return False
        self._seen[nonce] = now
        return True


async def receive_rest(
    stream: trio.SocketStream, buf: bytearray, pos: int
) -> None:
    """Fill ``buf[pos:]`` straight from the socket: the rest of a body whose
    length is known, with ``recv_into`` (no per-piece allocation, copy or
    parsing).  Raises TransportError if the peer closes first."""
    length = len(buf)
    with memoryview(buf) as view:
        while pos < length:
            n = await stream.socket.recv_into(view[pos:], min(RECV_SIZE, length - pos))
            if n == 0:
                raise TransportError("connection closed inside a body")
            pos += n


async def send_message(stream: trio.SocketStream, head: bytes, body: bytes) -> None:
    """Send a head and a big body with one ``sendmsg`` (no copy of the body
    behind the head, one syscall and one scheduler pass fewer than two
    ``send_all``); whatever the kernel did not take goes out with send_all.
    Socket errors surface as OSError, as from the caller's other raw calls."""
    sent = await stream.socket.sendmsg([head, body])
    if sent < len(head):
        await stream.send_all(memoryview(head)[sent:])
        sent = len(head)
    if sent - len(head) < len(body):
        with memoryview(body) as view:
            await stream.send_all(view[sent - len(head):])


def header_value(headers: dict[bytes, bytes], name: bytes) -> str | None:
    """The value of header ``name`` (lower-case bytes), or None."""
    value = headers.get(name)
    return None if value is None else value.decode("latin-1")


def sha256_hex(data: bytes | bytearray) -> str:
    """The hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


# Below this, hashing in the event loop is cheaper than a hop to a worker thread.
_THREAD_HASH_MIN = 128 * 1024


async def sha256_async(data: bytes | bytearray) -> str:
    """The hex SHA-256, computed off the event loop for big buffers (the
    hash releases the GIL, so other requests keep being served meanwhile)."""
    if len(data) < _THREAD_HASH_MIN:
        return sha256_hex(data)
    return await trio.to_thread.run_sync(sha256_hex, data)
