"""What one SFTP session remembers between requests: the bucket a lookup just
found (protocols.sftp.server.BUCKET_FRESH_SECONDS), which a write open right
after it uses without another lookup.  A bucket that went away in between
must fail the upload with an SFTP error, store nothing, and be looked up
afresh by the next open.

asyncssh's client here: it reports a failed close (paramiko ignores one)."""

from __future__ import annotations

import asyncio
import os
import stat as statmod

import asyncssh
import pytest

from tests.harness import NodeProcess
from tests.sftp.conftest import SFTP_PASSWORD, SftpUser, paramiko_client


async def _stale_bucket_put(su: SftpUser, name: str) -> None:
    async with (
        asyncssh.connect("127.0.0.1", su.port, username=su.username,
                         password=SFTP_PASSWORD, known_hosts=None) as conn,
        conn.start_sftp_client() as sftp,
    ):
        await sftp.mkdir(f"/{name}")
        # As OpenSSH's put does: a stat (of a file not there yet), then the open.
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            await sftp.stat(f"/{name}/a.txt")
        other = paramiko_client(su)  # another session deletes the bucket
        other.rmdir(f"/{name}")
        # Refused by the close (the open used the bucket the stat found) or,
        # if this machine took more than BUCKET_FRESH_SECONDS, by the open.
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            async with sftp.open(f"/{name}/a.txt", "wb") as f:
                await f.write(b"into a bucket that is gone")
        assert name not in other.listdir("/")  # the failed upload created nothing
        # The same name again, a new bucket: the next open finds it.
        other.mkdir(f"/{name}")
        async with sftp.open(f"/{name}/b.txt", "wb") as f:
            await f.write(b"stored")
        with other.open(f"/{name}/b.txt", "rb") as g:
            assert g.read() == b"stored"
        assert other.listdir(f"/{name}") == ["b.txt"]
        other.close()


def test_a_put_into_a_bucket_deleted_since_its_stat_fails_then_recovers(
        node: NodeProcess, sftp_user: SftpUser) -> None:
    asyncio.run(_stale_bucket_put(sftp_user, f"gone-{os.urandom(4).hex()}"))


def test_many_small_puts_after_stats_land_in_their_bucket(
        node: NodeProcess, sftp_user: SftpUser) -> None:
    bucket = sftp_user.user.bucket
    c = paramiko_client(sftp_user)
    for i in range(20):
        with pytest.raises(FileNotFoundError):
            c.stat(f"/{bucket}/many/{i}.txt")
        with c.open(f"/{bucket}/many/{i}.txt", "wb") as f:
            f.write(f"file {i}".encode())
    attrs = {a.filename: a for a in c.listdir_attr(f"/{bucket}/many")}
    assert sorted(attrs) == sorted(f"{i}.txt" for i in range(20))
    assert all(statmod.S_ISREG(a.st_mode or 0) for a in attrs.values())
    with c.open(f"/{bucket}/many/7.txt", "rb") as f:
        assert f.read() == b"file 7"
    c.close()
