"""SFTP with real clients (OpenSSH sftp via sshpass, paramiko) against a real node."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import httpx
import paramiko
import pytest

from tests.harness import NodeProcess
from tests.rest.conftest import signup
from tests.sftp.conftest import SFTP_PASSWORD, SftpUser, openssh_sftp, paramiko_client


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


@pytest.mark.slow
def test_openssh_put_get_100mib_byte_identical(sftp_user: SftpUser, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    with src.open("wb") as f:
        for _ in range(100):
            f.write(os.urandom(1 << 20))
    bucket = sftp_user.user.bucket
    done = openssh_sftp(sftp_user, f"cd {bucket}\nput big.bin remote.bin\n"
                        "get remote.bin back.bin\nls -l\n", tmp_path)
    assert done.returncode == 0, done.stderr
    assert _sha(tmp_path / "back.bin") == _sha(src)
    assert "remote.bin" in done.stdout


def test_openssh_ls_root_cd_put_get_rename_rm_mkdir(sftp_user: SftpUser, tmp_path: Path) -> None:
    (tmp_path / "local.txt").write_text("hello sftp\n")
    bucket = sftp_user.user.bucket
    batch = (f"ls\ncd {bucket}\nput local.txt remote.txt\nmkdir docs\n"
             "rename remote.txt docs/moved.txt\nls docs\nget docs/moved.txt got.txt\n"
             "rm docs/moved.txt\nrmdir docs\nls\n")
    done = openssh_sftp(sftp_user, batch, tmp_path)
    assert done.returncode == 0, done.stderr
    assert bucket in done.stdout
    assert "docs/moved.txt" in done.stdout
    assert (tmp_path / "got.txt").read_text() == "hello sftp\n"
    c = paramiko_client(sftp_user)
    assert c.listdir(f"/{bucket}") == []


def test_openssh_ls_of_1000_files(sftp_user: SftpUser, tmp_path: Path) -> None:
    u = sftp_user.user
    c = paramiko_client(sftp_user)
    for i in range(1000):
        with c.open(f"/{u.bucket}/many/f{i:04d}.txt", "wb") as f:
            f.write(b"%d" % i)
    names = c.listdir(f"/{u.bucket}/many")
    assert sorted(names) == [f"f{i:04d}.txt" for i in range(1000)]
    done = openssh_sftp(sftp_user, f"cd {u.bucket}/many\nls -1\n", tmp_path)
    assert done.returncode == 0, done.stderr
    listed = [ln.strip() for ln in done.stdout.splitlines() if ln.strip().startswith("f")]
    assert len(listed) == 1000


def test_paramiko_operations_and_errors(sftp_user: SftpUser) -> None:
    u = sftp_user.user
    c = paramiko_client(sftp_user)
    assert c.listdir("/") == [u.bucket]
    data = os.urandom(6 * 1024 * 1024 + 3)
    with c.open(f"/{u.bucket}/a/b.bin", "wb") as f:
        f.set_pipelined(True)
        f.write(data)
    st = c.stat(f"/{u.bucket}/a/b.bin")
    assert st.st_size == len(data)
    # Resume: read from an offset (what `reget` does).
    with c.open(f"/{u.bucket}/a/b.bin", "rb") as f:
        f.seek(5_000_000)
        assert f.read(2_000_000) == data[5_000_000:]
    with pytest.raises(FileNotFoundError):
        c.stat(f"/{u.bucket}/nope.txt")
    with pytest.raises(FileNotFoundError):
        c.listdir("/../../etc")
    with pytest.raises(OSError):
        c.open(f"/{u.bucket}/a/b.bin", "ab")
    c.mkdir(f"/{u.bucket}/folder")
    assert c.listdir(f"/{u.bucket}") == ["a", "folder"]
    with pytest.raises(OSError):
        c.rmdir(f"/{u.bucket}/a")  # not empty
    c.posix_rename(f"/{u.bucket}/a", f"/{u.bucket}/z")
    assert c.listdir(f"/{u.bucket}/z") == ["b.bin"]
    # Buckets are top-level folders: mkdir/rmdir at the root.
    name = "sftp-" + u.account_id.lower().replace("_", "-")[-10:]
    c.mkdir(f"/{name}")
    assert name in c.listdir("/")
    c.rmdir(f"/{name}")
    assert name not in c.listdir("/")


def test_other_accounts_are_invisible(node: NodeProcess, sftp_user: SftpUser) -> None:
    other = signup(node)
    httpx.post(f"{node.web_url}/api/v1/files?key=secret.txt", headers=other.api_headers,
               content=b"private")
    c = paramiko_client(sftp_user)
    assert other.bucket not in c.listdir("/")
    with pytest.raises(FileNotFoundError):
        c.listdir(f"/{other.bucket}")
    with pytest.raises(FileNotFoundError):
        c.open(f"/{other.bucket}/secret.txt", "rb")
    with pytest.raises(FileNotFoundError):
        c.open(f"/{other.bucket}/new.txt", "wb").close()


def test_auth_password_disabled_and_rate_limit(node: NodeProcess, sftp_user: SftpUser) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        paramiko_client(sftp_user, password="wrong-password")
    sftp_user.user.client.delete("/api/sftp")
    with pytest.raises(paramiko.AuthenticationException):
        paramiko_client(sftp_user)
    sftp_user.user.client.post("/api/sftp", json={"password": SFTP_PASSWORD})
    assert paramiko_client(sftp_user).listdir("/")
    # 5 failed attempts per minute (test config): then even the right password is refused.
    for _ in range(5):
        with pytest.raises(paramiko.AuthenticationException):
            paramiko_client(sftp_user, password="bad-password!")
    with pytest.raises(paramiko.AuthenticationException):
        paramiko_client(sftp_user)


def test_public_key_auth(sftp_user: SftpUser) -> None:
    key = paramiko.Ed25519Key.from_private_key_file  # noqa: F841 - type reference
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    priv = Ed25519PrivateKey.generate()
    pem = priv.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()
    pub = priv.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    import io

    pkey = paramiko.Ed25519Key.from_private_key(io.StringIO(pem))
    r = sftp_user.user.client.post("/api/sftp/keys", json={"publicKey": pub, "name": "laptop"})
    assert r.status_code == 201 and r.json()["fingerprint"].startswith("SHA256:")
    t = paramiko.Transport(("127.0.0.1", sftp_user.port))
    t.connect(username=sftp_user.username, pkey=pkey)
    assert paramiko.SFTPClient.from_transport(t).listdir("/") == [sftp_user.user.bucket]
    t.close()
    dup = sftp_user.user.client.post("/api/sftp/keys", json={"publicKey": pub})
    assert dup.status_code == 409
    key_id = r.json()["id"]
    assert sftp_user.user.client.delete(f"/api/sftp/keys?id={key_id}").json() == {"success": True}
    t = paramiko.Transport(("127.0.0.1", sftp_user.port))
    with pytest.raises(paramiko.AuthenticationException):
        t.connect(username=sftp_user.username, pkey=pkey)


def test_same_host_key_derived_from_cluster_secret(node: NodeProcess) -> None:
    from protocols.sftp.listener import host_key

    secret = node.settings.cluster_secret()
    t = paramiko.Transport(("127.0.0.1", node.ports["sftp"]))
    t.start_client()
    served = t.get_remote_server_key().get_base64()
    t.close()
    assert host_key(secret).export_public_key("openssh").split()[1].decode() == served


def test_cross_protocol_rest_sftp_rest(node: NodeProcess, sftp_user: SftpUser) -> None:
    u = sftp_user.user
    data = os.urandom(300_000)
    r = httpx.post(f"{node.web_url}/api/v1/files?key=x/report.pdf", headers=u.api_headers,
                   content=data, timeout=60)
    assert r.status_code == 201
    rest_meta = httpx.get(f"{node.web_url}/api/v1/files/{r.json()['id']}?meta=true",
                          headers=u.api_headers).json()
    c = paramiko_client(sftp_user)
    with c.open(f"/{u.bucket}/x/report.pdf", "rb") as f:
        assert f.read() == data
    with c.open(f"/{u.bucket}/x/from-sftp.pdf", "wb") as f:
        f.write(data)
    listing = httpx.get(f"{node.web_url}/api/v1/files?prefix=x/", headers=u.api_headers).json()
    by_key = {f["key"]: f for f in listing["files"]}
    assert by_key["x/from-sftp.pdf"]["contentType"] == "application/pdf"
    got = httpx.get(f"{node.web_url}/api/v1/files/{by_key['x/from-sftp.pdf']['id']}",
                    headers=u.api_headers)
    assert got.content == data
    sftp_meta = httpx.get(f"{node.web_url}/api/v1/files/{by_key['x/from-sftp.pdf']['id']}"
                          "?meta=true", headers=u.api_headers).json()
    assert sftp_meta["etag"] == rest_meta["etag"] == hashlib.md5(data).hexdigest()


def test_cross_protocol_s3_sftp_rest_s3(node: NodeProcess, sftp_user: SftpUser) -> None:
    """S3 put -> SFTP get/put -> REST get/put -> S3 get: same bytes, ETag, content type."""
    import boto3
    from botocore.config import Config

    u = sftp_user.user
    s3 = boto3.client(
        "s3", endpoint_url=node.s3_url, aws_access_key_id=u.access_key,
        aws_secret_access_key=u.secret_key, region_name=node.region,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    data = os.urandom(5 * 1024 * 1024 + 11)
    s3.put_object(Bucket=u.bucket, Key="trip/one.csv", Body=data, ContentType="text/csv")
    c = paramiko_client(sftp_user)
    with c.open(f"/{u.bucket}/trip/one.csv", "rb") as f:
        f.prefetch()
        assert f.read() == data
    with c.open(f"/{u.bucket}/trip/two.csv", "wb") as f:
        f.set_pipelined(True)
        f.write(data)
    listing = httpx.get(f"{node.web_url}/api/v1/files?prefix=trip/", headers=u.api_headers)
    ids = {f["key"]: f["id"] for f in listing.json()["files"]}
    got = httpx.get(f"{node.web_url}/api/v1/files/{ids['trip/two.csv']}", headers=u.api_headers)
    assert got.content == data and got.headers["content-type"] == "text/csv"
    up = httpx.post(f"{node.web_url}/api/v1/files?key=trip/three.csv", headers=u.api_headers,
                    content=got.content, timeout=60)
    assert up.status_code == 201
    head = s3.head_object(Bucket=u.bucket, Key="trip/three.csv")
    one = s3.head_object(Bucket=u.bucket, Key="trip/one.csv")
    assert head["ETag"] == one["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert head["ContentType"] == "text/csv"
    assert s3.get_object(Bucket=u.bucket, Key="trip/three.csv")["Body"].read() == data
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert names == [u.bucket]


def test_sftp_transfers_appear_in_the_live_trace(node: NodeProcess, sftp_user: SftpUser) -> None:
    from tests.admin.conftest import console_token
    from tests.admin.test_admin_api import jsonschema_event
    from tests.harness import TraceReader

    reader = TraceReader(node.web_url, console_token(node), protocol="sftp")
    try:
        sftp = paramiko_client(sftp_user)
        bucket = sftp.listdir("/")[0]
        with sftp.open(f"/{bucket}/traced.bin", "wb") as f:
            f.write(b"t" * 70_000)
        with sftp.open(f"/{bucket}/traced.bin", "rb") as f:
            assert f.read() == b"t" * 70_000
        with pytest.raises(FileNotFoundError):
            sftp.remove(f"/{bucket}/missing.bin")
        sftp.close()

        deadline = time.monotonic() + 15
        while len(reader.requests()) < 3:
            assert time.monotonic() < deadline, reader.requests()
            time.sleep(0.05)
        put, get, remove = reader.requests()[:3]
        assert (put["operation"], put["status"], put["bytes_in"]) == ("PutObject", 200, 70_000)
        assert (get["operation"], get["status"], get["bytes_out"]) == ("GetObject", 200, 70_000)
        assert (remove["operation"], remove["status"]) == ("Remove", 404)
        for event in (put, get, remove):
            assert event["protocol"] == "sftp" and event["bucket"] == bucket
            assert event["account"] == sftp_user.username
            jsonschema_event(event)
        assert put["key"] == "traced.bin" and remove["key"] == "missing.bin"
    finally:
        reader.close()
