"""AES-GCM packets of an SSH connection: one cipher object per key, fewer copies.

asyncssh's AES-GCM shim builds a new ``AESGCM`` object for every packet it
encrypts or decrypts, and ``cryptography`` then sets the cipher context up
again each time.  Measured on the 2-core machine: decrypting a 32 KiB packet
took 21.8 us that way, 12.3 us with one object kept for the key; encrypting
a 28-byte SFTP status, 4.5 us against 2.1.  A 256 MiB upload is about 8,000
packets received.

:func:`reuse_gcm_ciphers` swaps a connection's asyncssh ``GCMCipher``
objects, receive and send, for :class:`KeptGCMCipher` ones with the same key
and the same nonce state, which compute exactly the same bytes.  New keys
(the first key exchange, a rekey) bring new asyncssh objects: call it
again whenever data arrives and it swaps those, between two packets.

It also gives the connection :func:`_gcm_sender`'s ``send_packet`` (see
there): asyncssh's sends every packet after an ``SSH_MSG_IGNORE`` of its
own and copies each packet five times on its way out.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from asyncssh.constants import (
    MSG_CHANNEL_DATA,
    MSG_DEBUG,
    MSG_KEX_LAST,
    MSG_NEWKEYS,
    MSG_SERVICE_ACCEPT,
    MSG_SERVICE_REQUEST,
    MSG_USERAUTH_BANNER,
    MSG_USERAUTH_LAST,
)
from asyncssh.crypto.cipher import GCMCipher
from asyncssh.encryption import GCMEncryption
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_GCM_MAC_SIZE = 16
# Packets asyncssh holds back until the key exchange completes (its own list).
_BEFORE_KEX = frozenset({MSG_DEBUG, MSG_SERVICE_REQUEST, MSG_SERVICE_ACCEPT})
# Random padding is drawn from the OS this many bytes at a time.
_PAD_POOL = 4096
# From what size a decrypted channel data packet is handed on as a view.
_VIEW_MIN = 4096


class KeptGCMCipher(GCMCipher):
    """asyncssh's ``GCMCipher`` keeping its ``AESGCM`` object for its key."""

    def __init__(self, old: GCMCipher) -> None:
        # Not super().__init__: the state (key, next nonce) is the old object's.
        self._cipher = old._cipher
        self._key = old._key
        self._iv = old._iv
        self._aead = AESGCM(old._key)

    def encrypt_and_sign(self, header: bytes, data: bytes) -> tuple[bytes, bytes]:
        """Encrypt and sign a packet, as ``GCMCipher.encrypt_and_sign``."""
        sealed = self._aead.encrypt(self._iv, data, header)
        self._update_iv()
        return header + sealed[:-_GCM_MAC_SIZE], sealed[-_GCM_MAC_SIZE:]

    def seal(self, header: bytes, data: bytes) -> bytearray:
        """The packet as it goes on the wire: ``header``, ``data`` encrypted,
        the tag -- written into one buffer (``encrypt_and_sign`` and asyncssh
        then join the three with two more copies)."""
        out = bytearray(len(header) + len(data) + _GCM_MAC_SIZE)
        out[:len(header)] = header
        with memoryview(out) as view:
            self._aead.encrypt_into(self._iv, data, header, view[len(header):])
        self._update_iv()
        return out

    def verify_and_decrypt(self, header: bytes, data: bytes, mac: bytes) -> bytes | None:
        """Verify and decrypt a packet, as ``GCMCipher.verify_and_decrypt``."""
        try:
            plain: bytes | None = self._aead.decrypt(self._iv, data + mac, header)
        except InvalidTag:
            plain = None
        self._update_iv()
        return plain


class KeptGCMEncryption(GCMEncryption):
    """asyncssh's ``GCMEncryption`` over a :class:`KeptGCMCipher`, decrypting
    a packet from its pieces with one join (asyncssh's concatenates the
    first block with the rest, then that with the MAC: a 32 KiB packet
    copied twice before decryption)."""

    _cipher: KeptGCMCipher
    # Whether asyncssh logs packets (their bytes, at DEBUG): then no views.
    _logged = False

    def decrypt_packet(self, seq: int, first: bytes, rest: bytes, header_len: int,
                       mac: bytes) -> bytes | memoryview | None:
        """Verify and decrypt a packet, as ``GCMEncryption.decrypt_packet``.

        A big channel data packet comes back as a view of the plaintext:
        asyncssh slices the payload out of it, the data out of that, and its
        stream reader cuts the data at SFTP packet boundaries (a 32 KiB
        write spans two SSH packets) before joining the pieces of one
        request -- four copies of every uploaded byte made of views, one
        join left.  Only channel data: the other messages' strings are
        decoded as text, which a view cannot do.
        """
        cipher = self._cipher
        try:
            plain = cipher._aead.decrypt(
                cipher._iv, b"".join((first[header_len:], rest, mac)), first[:header_len])
        except InvalidTag:
            cipher._update_iv()
            return None
        cipher._update_iv()
        if len(plain) >= _VIEW_MIN and plain[1] == MSG_CHANNEL_DATA and not self._logged:
            return memoryview(plain)
        return plain

    def seal(self, header: bytes, packet: bytes) -> bytearray:
        """``encrypt_packet``'s packet and MAC in one buffer (see
        :meth:`KeptGCMCipher.seal`)."""
        return self._cipher.seal(header, packet)


def _swap(encryption: Any) -> bool:
    if type(encryption) is GCMEncryption:
        kept: Any = encryption
        kept._cipher = KeptGCMCipher(encryption._cipher)
        kept.__class__ = KeptGCMEncryption
        kept._logged = logging.getLogger("asyncssh").isEnabledFor(logging.DEBUG)
        return True
    return False


def reuse_gcm_ciphers(conn: Any) -> None:
    """Give the connection's AES-GCM encryption, both ways, a kept cipher
    object (a no-op for other ciphers and for ciphers already swapped), and
    the first time, the sender of :func:`_gcm_sender`."""
    _swap(conn._recv_encryption)  # asyncssh internals
    if _swap(conn._send_encryption) and not getattr(conn.send_packet, "kept_gcm", False):
        # Another cipher's packets go to what sent them before (asyncssh's
        # own, or session.no_ignore_padding's wrapper of it).
        conn.send_packet = _gcm_sender(conn, conn.send_packet)


class _Padding:
    """Random padding bytes, from the OS's CSPRNG a few KiB at a time: asyncssh
    called ``os.urandom`` (a system call) for each packet's 4 to 19 bytes."""

    __slots__ = ("_pool", "_pos")

    def __init__(self) -> None:
        self._pool = b""
        self._pos = 0

    def take(self, n: int) -> bytes:
        pos = self._pos
        if pos + n > len(self._pool):
            self._pool, pos = os.urandom(_PAD_POOL), 0
        self._pos = pos + n
        return self._pool[pos:pos + n]


def _gcm_sender(conn: Any, generic: Any) -> Any:
    """A ``send_packet`` for ``conn`` that sends what asyncssh's does, for
    packets under a :class:`KeptGCMEncryption`, minus two costs:

    * asyncssh sends an ``SSH_MSG_IGNORE`` before every packet of type above
      the key exchange's: the countermeasure of RFC 4251 section 9.3.1 to the
      chosen-plaintext attack on CBC mode, whose next IV is the last
      ciphertext block.  GCM's nonce is a counter: nothing to counter, and
      OpenSSH's sshd sends no such packets.  A 256 MiB get sends 16,000 data
      packets (a 32 KiB read reply is one packet of 32,768 bytes and one of
      13 for OpenSSH's client), each with an ignore packet of its own.
    * five copies of each packet (type byte and arguments, padding, header,
      sealed data, MAC), one ``os.urandom`` call each: here one join of the
      plaintext and the encryption straight into the buffer sent.

    Anything else (another cipher, compression) goes to ``generic``, the
    ``send_packet`` the connection had before.
    """
    c = conn
    padding = _Padding()
    # The same test as quiet_packet_logs: asyncssh's packet logs only print at DEBUG.
    logged = logging.getLogger("asyncssh").isEnabledFor(logging.DEBUG)

    def send_packet(pkttype: int, *args: bytes, handler: Any = None) -> None:
        encryption = c._send_encryption
        if type(encryption) is not KeptGCMEncryption or c._compressor:
            generic(pkttype, *args, handler=handler)
            return
        # From here on, asyncssh's SSHConnection.send_packet (2.24) step by step.
        if (c._auth_complete and c._kex_complete and
                (c._rekey_bytes_sent >= c._rekey_bytes or
                 (c._rekey_seconds and time.monotonic() >= c._rekey_time))):
            c._send_kexinit()
            c._kexinit_sent = True
        if (((pkttype in _BEFORE_KEX or pkttype > MSG_KEX_LAST) and not c._kex_complete) or
                (pkttype == MSG_USERAUTH_BANNER and
                 not (c._auth_in_progress or c._auth_complete)) or
                (pkttype > MSG_USERAUTH_LAST and not c._auth_complete)):
            c._deferred_packets.append((pkttype, args))
            return
        size = 1 + sum(map(len, args))
        padlen = -(c._send_enchdrlen + size) % c._send_blocksize
        if padlen < 4:
            padlen += c._send_blocksize
        pktlen = 1 + size + padlen
        seq = c._send_seq
        plain = b"".join((bytes((padlen, pkttype)), *args, padding.take(padlen)))
        c._send(encryption.seal(pktlen.to_bytes(4, "big"), plain))
        if pkttype == MSG_NEWKEYS and c._strict_kex:
            c._send_seq = 0
        else:
            c._send_seq = (seq + 1) & 0xffffffff
        if c._kex_complete:
            c._rekey_bytes_sent += pktlen
        if logged:
            (handler or c).log_sent_packet(pkttype, seq, plain[1:1 + size])

    send_packet.kept_gcm = True  # type: ignore[attr-defined]
    return send_packet
