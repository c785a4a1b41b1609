"""SFTP requests as particular clients send them, checked packet by packet
(paramiko's request layer) against a real node."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from paramiko.sftp import CMD_EXTENDED, CMD_WRITE, int64

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


# asyncssh.SFTPServer methods that never touch the node's filesystem.
_HARMLESS_DEFAULTS = {"convert_attrs", "format_user", "format_group", "format_longname",
                      "map_path", "reverse_map_path", "lock", "unlock", "exit"}


def test_no_default_that_touches_the_local_filesystem_is_inherited() -> None:
    """asyncssh's SFTPServer implements every operation on local files: each
    must be overridden (a new asyncssh method makes this fail, on purpose)."""
    import asyncssh

    from protocols.sftp.server import BucketSFTPServer

    inherited = [name for name, value in vars(asyncssh.SFTPServer).items()
                 if callable(value) and not name.startswith("_")
                 and name not in _HARMLESS_DEFAULTS
                 and getattr(BucketSFTPServer, name) is value]
    assert inherited == []


def test_links_and_filesystem_stats_are_refused(sftp_user: SftpUser, tmp_path: Path) -> None:
    c = paramiko_client(sftp_user)
    bucket = sftp_user.user.bucket
    with c.open(f"/{bucket}/file.txt", "wb") as f:
        f.write(b"x")
    target = tmp_path / "made-by-sftp"
    with pytest.raises(OSError, match="not supported"):
        c.symlink("/etc/hostname", str(target))
    with pytest.raises(OSError, match="not supported"):
        c.symlink(f"/{bucket}/file.txt", f"/{bucket}/link.txt")
    with pytest.raises(OSError, match="not supported"):
        c.readlink(str(tmp_path))
    for request in ((b"hardlink@openssh.com", f"/{bucket}/file.txt", str(target)),
                    (b"statvfs@openssh.com", "/")):
        with pytest.raises(OSError, match="not supported"):
            c._request(CMD_EXTENDED, *request)
    assert not os.path.lexists(target)
    assert c.listdir(f"/{bucket}") == ["file.txt"]
