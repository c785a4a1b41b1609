"""What a small file's requests cost the server: no ignore packet before each
reply (protocols.sftp.session.no_ignore_padding), attributes built without
asyncssh's field-by-field constructor (protocols.sftp.ops), and one path lookup for
the LSTAT, STAT and OPEN of a download (the session's last lookup, kept
while SQLite's data_version says nobody committed since) -- which must
never hide a change another session made in between."""

from __future__ import annotations

import os
from typing import Any

import asyncssh
import paramiko
import pytest
from paramiko.common import MSG_IGNORE

from protocols.sftp.ops import DIR_MODE, FILE_MODE, dir_attrs, file_attrs
from protocols.sftp.session import no_ignore_padding
from tests.harness import NodeProcess
from tests.sftp.conftest import SFTP_PASSWORD, SftpUser, paramiko_client


class _Conn:
    """The part of asyncssh's SSHConnection.send_packet the wrapper relies
    on: before a packet after the key exchange, it sends an ignore packet
    through ``self.send_packet``."""

    def __init__(self, cipher: str) -> None:
        self.cipher = cipher
        self.sent: list[int] = []

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.cipher if name == "send_cipher" else default

    def send_packet(self, pkttype: int, *args: bytes, handler: Any = None) -> None:
        if pkttype > 49:  # past MSG_KEX_LAST
            self.send_packet(MSG_IGNORE, b"\0\0\0\0")
        self.sent.append(pkttype)


@pytest.mark.parametrize(("cipher", "ignores"), [
    ("aes128-gcm@openssh.com", 0), ("chacha20-poly1305@openssh.com", 0), ("aes128-ctr", 0),
    ("aes256-cbc", 3),
])
def test_ignore_packets_only_precede_packets_of_cbc_ciphers(cipher: str, ignores: int) -> None:
    conn = _Conn(cipher)
    no_ignore_padding(conn)
    for pkttype in (94, 94, 21, 98):  # channel data, data, NEWKEYS, channel request
        conn.send_packet(pkttype, b"payload")
    assert conn.sent.count(MSG_IGNORE) == ignores
    assert [t for t in conn.sent if t != MSG_IGNORE] == [94, 94, 21, 98]
    conn.send_packet(MSG_IGNORE, b"\0\0\0\0")  # an ignore asked for is sent
    assert conn.sent[-1] == MSG_IGNORE


def test_replies_come_without_ignore_packets(sftp_user: SftpUser) -> None:
    t = paramiko.Transport(("127.0.0.1", sftp_user.port))  # AES-CTR, paramiko's default
    t.connect(username=sftp_user.username, password=SFTP_PASSWORD)
    received: list[int] = []
    read = t.packetizer.read_message

    def counted() -> tuple[int, Any]:
        ptype, message = read()
        received.append(ptype)
        return ptype, message

    t.packetizer.read_message = counted  # type: ignore[method-assign]
    try:
        sftp = paramiko.SFTPClient.from_transport(t)
        assert sftp is not None
        path = f"/{sftp_user.user.bucket}/small.txt"
        for _ in range(5):
            with sftp.open(path, "wb") as f:
                f.write(b"x" * 4096)
            assert sftp.stat(path).st_size == 4096
        assert len(received) >= 20  # the replies came through here, 4 a file
        assert MSG_IGNORE not in received
    finally:
        t.close()


def test_a_download_sees_what_another_session_changed_between_its_requests(
        node: NodeProcess, sftp_user: SftpUser) -> None:
    ours, theirs = paramiko_client(sftp_user), paramiko_client(sftp_user)
    path = f"/{sftp_user.user.bucket}/changing-{os.urandom(4).hex()}.bin"
    try:
        with pytest.raises(FileNotFoundError):
            ours.lstat(path)
        first = os.urandom(4096)
        with theirs.open(path, "wb") as f:
            f.write(first)
        # The same path again, as a download asks it: every answer is new.
        assert ours.lstat(path).st_size == 4096
        assert ours.stat(path).st_size == 4096
        second = os.urandom(1000)
        with theirs.open(path, "wb") as f:  # replaced between STAT and OPEN
            f.write(second)
        with ours.open(path, "rb") as g:
            assert g.read() == second
        assert ours.stat(path).st_size == 1000
        theirs.remove(path)
        with pytest.raises(FileNotFoundError):
            ours.stat(path)
        with pytest.raises(FileNotFoundError):
            ours.open(path, "rb")
        # Its own writes too: a put, then the stat and the read of it.
        with ours.open(path, "wb") as f:
            f.write(first)
        assert ours.stat(path).st_size == 4096
        with ours.open(path, "rb") as g:
            assert g.read() == first
    finally:
        ours.close()
        theirs.close()


@pytest.mark.parametrize(("ours", "kind", "size", "mode", "mtime"), [
    (file_attrs(4096, 1_700_000_000.7), asyncssh.FILEXFER_TYPE_REGULAR, 4096, FILE_MODE,
     1_700_000_000),
    (dir_attrs(), asyncssh.FILEXFER_TYPE_DIRECTORY, 0, DIR_MODE, 0),
])
def test_attributes_are_asyncssh_s_own(ours: asyncssh.SFTPAttrs, kind: int, size: int,
                                       mode: int, mtime: int) -> None:
    theirs = asyncssh.SFTPAttrs(type=kind, size=size, permissions=mode, uid=0, gid=0,
                                atime=mtime, mtime=mtime)
    assert type(ours) is asyncssh.SFTPAttrs
    assert repr(ours) == repr(theirs) and str(ours) == str(theirs)
    for version in (3, 4, 5, 6):
        assert ours.encode(version) == theirs.encode(version)
