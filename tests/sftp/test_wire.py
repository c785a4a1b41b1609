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

import pytest
from asyncssh.crypto.cipher import GCMCipher

from protocols.sftp.gcm import KeptGCMCipher
from protocols.sftp.inbuf import InputBuffer
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
