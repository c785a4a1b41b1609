"""SFTP transfers against a real node: what the pipelined handles must keep.

Uploads are cut into the store's chunks as they arrive and handed to the
upload write-behind; files of at most one chunk are stored by the close in one
call.  Downloads read chunks ahead.  These tests pin what that must never
change: the bytes and ETags at and around chunk boundaries, writes that arrive
out of order, reads in any order, errors reported in SFTP's own terms, and how
a path is looked up (delete markers, folders, other accounts).
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from typing import Any

import boto3
import httpx
import paramiko
import paramiko.sftp
import pytest
from botocore.config import Config

from tests.harness import NodeProcess, TraceReader
from tests.rest.conftest import User
from tests.rest.test_files import set_quota
from tests.sftp.conftest import SFTP_PASSWORD, SftpUser, paramiko_client

MiB = 1024 * 1024


def _s3(node: NodeProcess, u: User) -> Any:
    return boto3.client(
        "s3", endpoint_url=node.s3_url, aws_access_key_id=u.access_key,
        aws_secret_access_key=u.secret_key, region_name=node.region,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def _chunk_size(node: NodeProcess) -> int:
    return node.settings.storage.chunk_size


def test_uploads_at_and_around_chunk_boundaries(node: NodeProcess,
                                                sftp_user: SftpUser) -> None:
    u = sftp_user.user
    s3 = _s3(node, u)
    cs = _chunk_size(node)
    c = paramiko_client(sftp_user)
    for size in (0, 4096, 4097, cs - 1, cs, cs + 1, 2 * cs + 7):
        data = os.urandom(size)
        with c.open(f"/{u.bucket}/b/{size}.bin", "wb") as f:
            f.set_pipelined(True)
            f.write(data)
        got = s3.get_object(Bucket=u.bucket, Key=f"b/{size}.bin")
        assert got["Body"].read() == data, size
        assert got["ETag"] == f'"{hashlib.md5(data).hexdigest()}"', size
        assert c.stat(f"/{u.bucket}/b/{size}.bin").st_size == size


def test_writes_out_of_order_across_a_chunk_boundary(node: NodeProcess,
                                                     sftp_user: SftpUser) -> None:
    u = sftp_user.user
    cs = _chunk_size(node)
    data = os.urandom(cs + 300_000)
    split = cs - 100_000  # the later piece spans the boundary
    c = paramiko_client(sftp_user)
    with c.open(f"/{u.bucket}/ooo.bin", "wb") as f:
        f.seek(split)
        f.write(data[split:])
        f.seek(0)
        f.write(data[:split])
    assert _s3(node, u).get_object(Bucket=u.bucket, Key="ooo.bin")["Body"].read() == data


def test_reads_in_any_order_across_chunks(node: NodeProcess, sftp_user: SftpUser) -> None:
    u = sftp_user.user
    cs = _chunk_size(node)
    data = os.urandom(3 * cs + 12_345)
    _s3(node, u).put_object(Bucket=u.bucket, Key="r/big.bin", Body=data)
    rng = random.Random(21)
    ranges = [(cs - 10, 20), (3 * cs, 12_345), (0, 1), (2 * cs + 5, 70_000),
              (cs // 2, cs), (len(data) - 1, 1)]
    ranges += [(off, rng.randrange(1, 200_000)) for off in
               (rng.randrange(0, len(data) - 1) for _ in range(20))]
    ranges = [(off, min(n, len(data) - off)) for off, n in ranges]
    c = paramiko_client(sftp_user)
    with c.open(f"/{u.bucket}/r/big.bin", "rb") as f:
        # readv sends every read at once and the server answers them in order.
        for (off, n), piece in zip(ranges, f.readv(ranges), strict=True):
            assert piece == data[off:off + n], (off, n)
        f.seek(len(data) - 5)
        assert f.read(100) == data[-5:]
        f.seek(0)
        assert f.read() == data


def _put(c: paramiko.SFTPClient, path: str, data: bytes) -> None:
    """Upload and close, raising the close's status: paramiko's own close
    swallows it, and an upload is refused (or stored) by its close."""
    f = c.open(path, "wb")
    f.set_pipelined(True)
    f.write(data)
    f.flush()
    f._closed = True  # this close is ours: paramiko must not send another
    c._request(paramiko.sftp.CMD_CLOSE, f.handle)


def test_a_refused_upload_reports_why_and_stores_nothing(
        node: NodeProcess, sftp_user: SftpUser) -> None:
    u = sftp_user.user
    cs = _chunk_size(node)
    set_quota(node, u.account_id, cs)
    c = paramiko_client(sftp_user)
    # Bigger than a chunk: refused by the streamed upload's commit.
    with pytest.raises(OSError, match="Quota exceeded"):
        _put(c, f"/{u.bucket}/big.bin", os.urandom(2 * cs + 1))
    # One chunk or less: refused by the close's single call.
    _put(c, f"/{u.bucket}/fill.bin", b"x" * (cs - 10))
    with pytest.raises(OSError, match="Quota exceeded"):
        _put(c, f"/{u.bucket}/small.bin", b"y" * 100)
    assert sorted(c.listdir(f"/{u.bucket}")) == ["fill.bin"]


def test_delete_markers_are_neither_files_nor_folders(node: NodeProcess,
                                                      sftp_user: SftpUser) -> None:
    u = sftp_user.user
    s3 = _s3(node, u)
    s3.put_bucket_versioning(Bucket=u.bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=u.bucket, Key="gone/x.txt", Body=b"old")
    s3.put_object(Bucket=u.bucket, Key="kept/y.txt", Body=b"here")
    s3.delete_object(Bucket=u.bucket, Key="gone/x.txt")  # a delete marker is latest
    c = paramiko_client(sftp_user)
    for path in ("gone/x.txt", "gone"):
        with pytest.raises(FileNotFoundError):
            c.stat(f"/{u.bucket}/{path}")
    with pytest.raises(FileNotFoundError):
        c.open(f"/{u.bucket}/gone/x.txt", "rb")
    assert c.stat(f"/{u.bucket}/kept").st_mode is not None
    assert c.stat(f"/{u.bucket}/kept/y.txt").st_size == 4
    # The deleted key can be written again, even exclusively (O_EXCL).
    with c.open(f"/{u.bucket}/gone/x.txt", "wx") as f:
        f.write(b"new")
    with c.open(f"/{u.bucket}/gone/x.txt", "rb") as f:
        assert f.read() == b"new"


def test_exclusive_create_refuses_files_and_folders(node: NodeProcess,
                                                    sftp_user: SftpUser) -> None:
    u = sftp_user.user
    c = paramiko_client(sftp_user)
    with c.open(f"/{u.bucket}/d/f.txt", "w") as f:
        f.write(b"1")
    for path in ("d/f.txt", "d"):
        with pytest.raises(OSError, match="exists"):
            c.open(f"/{u.bucket}/{path}", "wx")
    assert c.open(f"/{u.bucket}/d/g.txt", "wx").close() is None


def test_a_session_cut_mid_upload_stores_nothing(node: NodeProcess,
                                                 sftp_user: SftpUser) -> None:
    from tests.admin.conftest import console_token

    u = sftp_user.user
    cs = _chunk_size(node)
    reader = TraceReader(node.web_url, console_token(node), protocol="sftp")
    try:
        t = paramiko.Transport(("127.0.0.1", sftp_user.port))
        t.connect(username=sftp_user.username, password=SFTP_PASSWORD)
        c = paramiko.SFTPClient.from_transport(t)
        assert c is not None
        f = c.open(f"/{u.bucket}/cut.bin", "wb")
        f.write(os.urandom(3 * cs))  # chunks handed to the upload already
        t.close()  # the handle is never closed: an interrupted put
        deadline = time.monotonic() + 15
        while not reader.requests():
            assert time.monotonic() < deadline, "no trace of the abandoned upload"
            time.sleep(0.05)
        put = reader.requests()[0]
        assert (put["operation"], put["key"], put["status"]) == ("PutObject", "cut.bin", 499)
    finally:
        reader.close()
    r = httpx.get(f"{node.web_url}/api/v1/files?prefix=cut", headers=u.api_headers)
    assert r.status_code == 200 and r.json()["files"] == []
