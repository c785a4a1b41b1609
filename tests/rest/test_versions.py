"""Time Machine (/api/versions) against a real node: overwrites through S3,
REST and SFTP become numbered versions, restore, pruning, and S3 clients
(boto3, aws-cli, rclone) still see an unversioned bucket."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import paramiko
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.harness import NodeProcess, started_node
from tests.rest.conftest import User, signup

SFTP_PASSWORD = "sftp-password-1"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    extra = "[accounts]\ndashboard_requests_per_minute = 10000\nlogin_attempts_per_minute = 200\n"
    with started_node(tmp_path_factory.mktemp("versionsnode"), extra) as n:
        yield n


@pytest.fixture
def user(node: NodeProcess) -> Iterator[User]:
    u = signup(node)
    yield u
    u.client.close()


def s3(node: NodeProcess, user: User):
    return boto3.client(
        "s3", endpoint_url=node.s3_url, aws_access_key_id=user.access_key,
        aws_secret_access_key=user.secret_key, region_name="eu-central-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


def versions_of(user: User, bucket: str, key: str) -> list[dict]:
    r = user.client.get("/api/versions", params={"bucket": bucket, "key": key})
    assert r.status_code == 200, r.text
    return r.json()["versions"]


def sftp_put(node: NodeProcess, user: User, path: str, data: bytes) -> None:
    assert user.client.post("/api/sftp", json={"password": SFTP_PASSWORD}).status_code == 200
    t = paramiko.Transport(("127.0.0.1", node.ports["sftp"]))
    t.connect(username=user.account_id, password=SFTP_PASSWORD)
    try:
        with paramiko.SFTPClient.from_transport(t) as sftp, sftp.open(path, "wb") as f:
            f.write(data)
    finally:
        t.close()


def test_three_protocols_three_versions_then_upload_and_restore(node, user):
    bucket, key = user.bucket, "docs/report.txt"
    s3(node, user).put_object(Bucket=bucket, Key=key, Body=b"1" * 100)            # S3
    r = httpx.post(f"{node.web_url}/api/v1/files", headers=user.api_headers,
                   params={"bucket": bucket, "key": key}, content=b"2" * 2000)      # REST
    assert r.status_code == 201, r.text
    sftp_put(node, user, f"/{bucket}/{key}", b"3" * 30_000)                        # SFTP
    found = versions_of(user, bucket, key)
    assert [(v["versionNumber"], v["size"], v["isCurrent"]) for v in found] == [
        (3, 30_000, True), (2, 2000, False), (1, 100, False)]
    assert all(v["versionId"].startswith("ver_") and v["createdAt"].endswith("Z")
               for v in found)

    # A new version through the API itself (the documented multipart form).
    r = user.client.post("/api/versions", data={"bucket": bucket, "key": key},
                         files={"file": ("report.txt", b"4" * 44, "text/plain")})
    assert r.status_code == 201, r.text
    made = r.json()
    assert set(made) == {"versionId", "key", "bucket", "size", "versionNumber", "createdAt"}
    assert (made["key"], made["bucket"], made["size"], made["versionNumber"]) == (
        key, bucket, 44, 4)

    # Restore version 1: a new current version 5 with its bytes, seen by S3.
    first = found[-1]["versionId"]
    r = user.client.patch("/api/versions", json={"versionId": first})
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True and r.json()["restoredVersion"] == first
    assert r.json()["newVersionNumber"] == 5
    got = s3(node, user).get_object(Bucket=bucket, Key=key)["Body"].read()
    assert got == b"1" * 100
    assert [v["versionNumber"] for v in versions_of(user, bucket, key)] == [5, 4, 3, 2, 1]

    listing = user.client.get("/api/versions", params={"bucket": bucket}).json()
    entry = next(f for f in listing["files"] if f["key"] == key)
    assert entry["versionCount"] == 5 and entry["size"] == 100
    assert listing["hasMore"] is False


def test_eleventh_version_prunes_the_first(node, user):
    client = s3(node, user)
    for i in range(1, 12):
        client.put_object(Bucket=user.bucket, Key="k", Body=b"x" * i)
    found = versions_of(user, user.bucket, "k")
    assert [v["versionNumber"] for v in found] == list(range(11, 1, -1))
    assert [v["size"] for v in found] == list(range(11, 1, -1))


def test_unversioned_bucket_still_looks_unversioned_to_s3(node, user):
    client = s3(node, user)
    bucket = f"tm-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=bucket)
    for data in (b"a", b"bb", b"ccc"):
        client.put_object(Bucket=bucket, Key="f", Body=data)
    assert "Status" not in client.get_bucket_versioning(Bucket=bucket)
    listed = client.list_object_versions(Bucket=bucket)
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in listed["Versions"]] == [
        ("f", "null", True)]
    assert "DeleteMarkers" not in listed
    assert client.get_object(Bucket=bucket, Key="f", VersionId="null")["Body"].read() == b"ccc"
    # A history version's S3 id is refused as S3 refuses an unknown one.
    hidden = _s3_version_id_of_history(node, user, bucket)
    with pytest.raises(ClientError) as err:
        client.get_object(Bucket=bucket, Key="f", VersionId=hidden)
    assert err.value.response["Error"]["Code"] == "NoSuchVersion"
    # Emptied and removed as any S3 client does it; the history goes with it.
    client.delete_object(Bucket=bucket, Key="f")
    client.delete_bucket(Bucket=bucket)
    r = user.client.get("/api/versions", params={"bucket": bucket})
    assert r.status_code == 404


def _s3_version_id_of_history(node: NodeProcess, user: User, bucket: str) -> str:
    import sqlite3

    path = node.db_url.removeprefix("sqlite://")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT v.version_id FROM object_versions v JOIN buckets b ON b.id = v.bucket_id "
            "WHERE b.name = ? AND v.history_at IS NOT NULL LIMIT 1", (bucket,)).fetchone()
    assert row is not None
    return row[0]


def _run(args: list[str], env: dict[str, str]) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300,
                          env={**base, **env})
    assert proc.returncode == 0, f"{args[:3]} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_aws_cli_rb_force_and_rclone_purge_with_history(node, user, tmp_path: Path):
    aws, rclone = shutil.which("aws"), shutil.which("rclone")
    if aws is None or rclone is None:
        pytest.skip("aws-cli and rclone are needed")
    env = {"AWS_ACCESS_KEY_ID": user.access_key, "AWS_SECRET_ACCESS_KEY": user.secret_key,
           "AWS_DEFAULT_REGION": "eu-central-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    base = [aws, "--endpoint-url", node.s3_url]
    src = tmp_path / "src"
    src.mkdir()
    for bucket_tool in ("aws", "rclone"):
        bucket = f"{bucket_tool}-{secrets.token_hex(4)}"
        _run([*base, "s3", "mb", f"s3://{bucket}"], env)
        for round_ in range(3):  # each sync overwrites: history builds up
            (src / "a.txt").write_bytes(os.urandom(1000 + round_))
            (src / "b.bin").write_bytes(os.urandom(9000 + round_))
            _run([*base, "s3", "cp", "--recursive", str(src), f"s3://{bucket}/"], env)
        assert len(versions_of(user, bucket, "b.bin")) == 3
        if bucket_tool == "aws":
            _run([*base, "s3", "rb", "--force", f"s3://{bucket}"], env)
        else:
            conf = tmp_path / "rclone.conf"
            conf.write_text(f"[cs]\ntype = s3\nprovider = Other\nendpoint = {node.s3_url}\n"
                            f"access_key_id = {user.access_key}\n"
                            f"secret_access_key = {user.secret_key}\nregion = eu-central-1\n")
            _run([rclone, "--config", str(conf), "purge", f"cs:{bucket}"], env)
        assert bucket not in _run([*base, "s3", "ls"], env)
    me = user.client.get("/api/auth/me").json()["user"]
    assert (me["usedBytes"], me["objectCount"]) == (0, 0)


def test_errors_are_clear(node, user):
    other = signup(node)
    s3(node, user).put_object(Bucket=user.bucket, Key="mine", Body=b"1")
    mine = versions_of(user, user.bucket, "mine")[0]["versionId"]
    # Another account learns nothing about my versions.
    r = other.client.patch("/api/versions", json={"versionId": mine})
    assert r.status_code == 404 and r.json()["error"] == "NoSuchVersion"
    r = other.client.get("/api/versions", params={"bucket": user.bucket, "key": "mine"})
    assert r.status_code in (403, 404)
    for bad in ("ver_x", "nope", "ver_99999999999"):
        r = user.client.patch("/api/versions", json={"versionId": bad})
        assert r.status_code == 404 and r.json()["status"] == 404, bad
    r = user.client.patch("/api/versions", json={})
    assert r.status_code == 400 and r.json()["error"] == "MissingField"
    r = user.client.get("/api/versions")
    assert r.status_code == 400 and r.json()["error"] == "MissingParameter"
    r = user.client.get("/api/versions", params={"bucket": user.bucket, "key": "absent"})
    assert r.status_code == 404
    r = user.client.post("/api/versions", json={"bucket": user.bucket})
    assert r.status_code == 400 and r.json()["error"] == "InvalidMultipart"
    assert httpx.get(f"{node.web_url}/api/versions").status_code == 401
    other.client.close()


def test_account_retention_settings(node, user):
    r = user.client.get("/api/versions/settings")
    assert r.json() == {"maxVersions": 10, "maxAgeDays": 30}
    r = user.client.put("/api/versions/settings", json={"maxVersions": 2, "maxAgeDays": 5})
    assert r.status_code == 200 and r.json() == {"maxVersions": 2, "maxAgeDays": 5}
    client = s3(node, user)
    for data in (b"1", b"22", b"333"):
        client.put_object(Bucket=user.bucket, Key="few", Body=data)
    assert [v["size"] for v in versions_of(user, user.bucket, "few")] == [3, 2]
    r = user.client.put("/api/versions/settings", json={"maxVersions": 0, "maxAgeDays": 5})
    assert r.status_code == 400 and r.json()["error"] == "InvalidArgument"
    r = user.client.put("/api/versions/settings", json={"maxVersions": "2", "maxAgeDays": 5})
    assert r.status_code == 400


def test_history_never_blocks_a_write_over_s3(node, user):
    token = node.settings.console_token_file().read_text().strip()
    r = httpx.patch(f"{node.web_url}/admin/v1/accounts/{user.account_id}",
                    headers={"Authorization": f"Bearer {token}"}, json={"quota_bytes": 25_000})
    assert r.status_code == 200, r.text
    client = s3(node, user)
    for data in (b"a" * 10_000, b"b" * 10_000, b"c" * 10_000):  # 30,000 with history
        client.put_object(Bucket=user.bucket, Key="q", Body=data)
    assert [v["size"] for v in versions_of(user, user.bucket, "q")] == [10_000, 10_000]
    me = user.client.get("/api/auth/me").json()["user"]
    assert me["usedBytes"] == 20_000
    with pytest.raises(ClientError) as err:  # live data alone over the quota: refused
        client.put_object(Bucket=user.bucket, Key="big", Body=b"d" * 20_000)
    assert err.value.response["Error"]["Code"] == "QuotaExceeded"
