"""SFTP requests as particular clients send them, checked packet by packet
(paramiko's request layer) against a real node."""

from __future__ import annotations

import os

import pytest
from paramiko.sftp import CMD_WRITE, int64

from tests.sftp.conftest import SftpUser, paramiko_client


def test_write_with_bytes_after_its_data_is_accepted(sftp_user: SftpUser) -> None:
    """pkg/sftp < 1.13.6 (rclone <= 1.62) sends the last short WRITE of a file
    with the rest of its 32 KiB buffer after the data string; OpenSSH ignores
    those bytes, and so must we (it used to be SSH_FX_BAD_MESSAGE)."""
    c = paramiko_client(sftp_user)
    path = f"/{sftp_user.user.bucket}/tail.bin"
    head, tail = os.urandom(32768), os.urandom(7232)
    f = c.open(path, "wb")
    c._request(CMD_WRITE, f.handle, int64(0), head)
    c._request(CMD_WRITE, f.handle, int64(len(head)), tail, os.urandom(25536))
    f.close()
    with c.open(path, "rb") as back:
        assert back.read() == head + tail


def test_chmod_of_a_missing_path_is_no_such_file(sftp_user: SftpUser) -> None:
    c = paramiko_client(sftp_user)
    bucket = sftp_user.user.bucket
    with pytest.raises(FileNotFoundError):
        c.chmod(f"/{bucket}/missing.txt", 0o600)
    with pytest.raises(FileNotFoundError):
        c.utime(f"/nobucket-{bucket}/x", (1, 1))
    with c.open(f"/{bucket}/there.txt", "wb") as f:
        f.write(b"x")
    c.chmod(f"/{bucket}/there.txt", 0o600)  # accepted (and ignored) for what exists
    c.chmod(f"/{bucket}", 0o700)
