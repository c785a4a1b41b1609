"""The SSH wire under the SFTP server: input buffer and AES-GCM cipher objects.

protocols/sftp/inbuf.py stands in for asyncssh's input ``bytes`` on bulk
transfers and protocols/sftp/gcm.py keeps one AES-GCM object per key, swapped
in between packets (again after every rekey).  A wrong offset or nonce shows
as a MAC failure that drops the connection, or as different bytes: OpenSSH's
own client, forced onto AES-GCM and to rekey every megabyte, must move a file
of several chunks both ways byte for byte.  The other tests use OpenSSH's
default cipher (chacha20-poly1305) and paramiko's (AES-CTR).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from asyncssh.crypto.cipher import GCMCipher
from asyncssh.encryption import GCMEncryption
from asyncssh.packet import String, UInt32

from protocols.sftp.gcm import KeptGCMCipher, reuse_gcm_ciphers
from protocols.sftp.inbuf import InputBuffer
from protocols.sftp.session import no_ignore_padding
from tests.sftp.conftest import SftpUser, openssh_sftp


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("cipher", ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"])
def test_aes_gcm_put_get_with_rekeys_byte_identical(sftp_user: SftpUser, tmp_path: Path,
                                                    cipher: str) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(9 * 1024 * 1024 + 123))
    bucket = sftp_user.user.bucket
    done = openssh_sftp(sftp_user, f"cd {bucket}\nput big.bin gcm.bin\nget gcm.bin back.bin\n",
                        tmp_path, extra=("-c", cipher, "-o", "RekeyLimit=1M"))
    assert done.returncode == 0, done.stderr
    assert _sha(tmp_path / "back.bin") == _sha(src)


def test_kept_gcm_cipher_matches_asyncssh_packet_for_packet() -> None:
    key, iv = os.urandom(16), os.urandom(12)
    theirs, ours = GCMCipher("aes128-gcm", key, iv), None
    sealed = []
    for n in (0, 28, 32768, 5):
        if n == 28:
            ours = KeptGCMCipher(theirs)  # swapped mid-stream, as on a live connection
        header, body = n.to_bytes(4, "big"), os.urandom(n)
        cipher = ours or theirs
        sealed.append((header, body, cipher.encrypt_and_sign(header, body)))
    check = GCMCipher("aes128-gcm", key, iv)
    for header, body, (packet, mac) in sealed:
        assert (packet, mac) == check.encrypt_and_sign(header, body)
    # Decrypting with a kept cipher from the same start, and a forged MAC refused.
    reader = KeptGCMCipher(GCMCipher("aes128-gcm", key, iv))
    for header, body, (packet, mac) in sealed:
        assert reader.verify_and_decrypt(header, packet[4:], mac) == body
    assert reader.verify_and_decrypt(b"\0\0\0\0", b"", bytes(16)) is None


def test_input_buffer_slices_as_bytes_do() -> None:
    data = os.urandom(300)
    buf, ref = InputBuffer([data[:7], data[7:200], data[200:]]), data
    for cut in (16, 100, 0, 150):
        assert len(buf) == len(ref) and bool(buf) == bool(ref)
        assert buf[:cut] == ref[:cut] and buf[3:cut] == ref[3:cut]
        assert buf.find(ref[40:44]) == ref.find(ref[40:44])
        buf, ref = buf[cut:], ref[cut:]
    for more in (os.urandom(50), os.urandom(9)):
        buf, ref = buf + more, ref + more
        assert buf.tobytes() == ref
        for lo, hi in ((0, len(ref)), (1, 30), (20, 55), (len(ref) - 3, len(ref))):
            assert buf[lo:hi] == ref[lo:hi]
        assert buf[5:].tobytes() == ref[5:]
    assert buf[len(ref):].tobytes() == b"" and not buf[len(ref):]
    assert (buf[len(ref):] + b"xy").tobytes() == b"xy"


class _FakeConn:
    """The state of an asyncssh connection that its send_packet reads, after
    a key exchange on AES-GCM (as asyncssh sets it: ETM-style header of 1)."""

    def __init__(self, key: bytes, iv: bytes) -> None:
        self._recv_encryption = None
        self._send_encryption = GCMEncryption(GCMCipher("aes128-gcm", key, iv))
        self._compressor = None
        self._auth_complete = self._kex_complete = self._strict_kex = True
        self._auth_in_progress = False
        self._rekey_bytes, self._rekey_bytes_sent = 1 << 30, 0
        self._rekey_seconds, self._rekey_time = 0, 0.0
        self._deferred_packets: list[tuple[int, tuple[bytes, ...]]] = []
        self._send_enchdrlen, self._send_blocksize = 1, 16
        self._send_seq = 41
        self.sent: list[bytes] = []
        self.generic: list[int] = []

    def _send(self, data: bytes) -> None:
        self.sent.append(bytes(data))

    def send_packet(self, pkttype: int, *args: bytes, handler: object = None) -> None:
        self.generic.append(pkttype)  # asyncssh's own, for what the fast one leaves


def test_gcm_sender_packets_open_with_asyncssh_cipher() -> None:
    key, iv = os.urandom(16), os.urandom(12)
    conn: Any = _FakeConn(key, iv)
    reuse_gcm_ciphers(conn)
    data = os.urandom(32768)
    conn.send_packet(94, UInt32(3), String(data))
    conn.send_packet(94, UInt32(3), String(b"tail"))
    reader = GCMCipher("aes128-gcm", key, iv)
    for packet, args in zip(conn.sent, ((UInt32(3), String(data)), (UInt32(3), String(b"tail"))),
                            strict=True):
        header, body, mac = packet[:4], packet[4:-16], packet[-16:]
        plain = reader.verify_and_decrypt(header, body, mac)
        assert plain is not None and int.from_bytes(header, "big") == len(plain)
        padlen = plain[0]
        # The packet length field excluded, the packet fills whole cipher blocks.
        assert 4 <= padlen < 20 and len(plain) % 16 == 0
        assert plain[1:len(plain) - padlen] == bytes((94,)) + b"".join(args)
    # No SSH_MSG_IGNORE in between: one packet each, sequence and rekey bytes counted.
    assert len(conn.sent) == 2 and conn._send_seq == 43 and not conn.generic
    assert conn._rekey_bytes_sent == sum(len(p) - 20 for p in conn.sent)
    # During a key exchange, data waits as in asyncssh; another cipher goes to asyncssh.
    conn._kex_complete = False
    conn.send_packet(94, UInt32(3), String(b"later"))
    assert conn._deferred_packets == [(94, (UInt32(3), String(b"later")))]
    conn._send_encryption = GCMEncryption(GCMCipher("aes128-gcm", key, iv))
    conn.send_packet(20, b"kexinit")
    assert conn.generic == [20] and len(conn.sent) == 2


def test_gcm_sender_takes_over_from_the_ignore_wrapper() -> None:
    # The listener wraps send_packet (no_ignore_padding) before any key
    # exists; once AES-GCM keys are in, the fast sender must still take over,
    # and hand other ciphers' packets to the wrapper, once per connection.
    key, iv = os.urandom(16), os.urandom(12)
    conn: Any = _FakeConn(key, iv)
    conn.get_extra_info = lambda name, default=None: "aes128-ctr"
    no_ignore_padding(conn)
    wrapper = conn.send_packet
    reuse_gcm_ciphers(conn)
    sender = conn.send_packet
    assert sender.kept_gcm and sender is not wrapper
    conn.send_packet(94, UInt32(3), String(b"data"))
    assert len(conn.sent) == 1 and not conn.generic
    conn._send_encryption = GCMEncryption(GCMCipher("aes128-gcm", key, iv))  # a rekey
    reuse_gcm_ciphers(conn)
    assert conn.send_packet is sender
    conn._send_encryption = None  # another cipher: through the wrapper to asyncssh's
    conn.send_packet(98, b"request")
    assert conn.generic == [98]


def test_big_packet_bodies_are_views_that_decrypt_alike() -> None:
    # A read of two packets: asyncssh slices each body out of the buffer and
    # hands it to the cipher with the first block and the MAC.
    key, iv = os.urandom(16), os.urandom(12)
    sender = KeptGCMCipher(GCMCipher("aes128-gcm", key, iv))
    bodies = [bytes((4, 94)) + os.urandom(8190) + bytes(4), bytes((4, 21)) + os.urandom(8190)
              + bytes(4)]
    wire = b"".join(sender.seal(len(b).to_bytes(4, "big"), b) for b in bodies)
    buf: Any = InputBuffer([wire[:100], wire[100:]])
    receiver = GCMEncryption(GCMCipher("aes128-gcm", key, iv))
    conn: Any = type("Conn", (), {"_recv_encryption": receiver, "_send_encryption": None})()
    reuse_gcm_ciphers(conn)
    plain, rests = [], []
    for body in bodies:
        n = len(body) - 12  # the body after the first block's 12 bytes
        first, rest, mac, buf = buf[:16], buf[16:16 + n], buf[16 + n:32 + n], buf[32 + n:]
        rests.append(rest)
        plain.append(receiver.decrypt_packet(0, first, rest, 4, mac))
    assert not buf
    # The first body spans the two reads (joined), the second is inside one (a view).
    assert [type(r) for r in rests] == [bytes, memoryview]
    size = len(wire) // 2
    assert [bytes(r) for r in rests] == [wire[i * size + 16:(i + 1) * size - 16] for i in (0, 1)]
    # Channel data comes back as a view (asyncssh slices it without copies),
    # anything else as bytes; both with the bytes sent.
    assert isinstance(plain[0], memoryview) and isinstance(plain[1], bytes)
    assert [bytes(p) for p in plain] == bodies  # type: ignore[arg-type]
