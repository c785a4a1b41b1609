"""One bucket-name rule and one key rule on every protocol: a name that S3
refuses, REST and SFTP refuse too (each with its own error), and the other
way round."""

from __future__ import annotations

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.harness import NodeProcess
from tests.sftp.conftest import SftpUser, enable_sftp, paramiko_client

BAD_BUCKETS = ["xn--abc", "a.-b", "ab", "Upper", "192.168.1.1", "x-s3alias"]
BAD_KEYS = ["a/../b.txt", "./a", "a/./b", ".."]


def s3_for(node: NodeProcess, su: SftpUser):
    return boto3.client(
        "s3", endpoint_url=node.s3_url, region_name=node.region,
        aws_access_key_id=su.user.access_key, aws_secret_access_key=su.user.secret_key,
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )


@pytest.mark.parametrize("name", BAD_BUCKETS)
def test_a_bucket_name_s3_refuses_is_refused_over_sftp_too(
    node: NodeProcess, sftp_user: SftpUser, name: str
) -> None:
    with pytest.raises(ClientError) as info:
        s3_for(node, sftp_user).create_bucket(Bucket=name)
    assert info.value.response["Error"]["Code"] == "InvalidBucketName"
    sftp = paramiko_client(sftp_user)
    try:
        with pytest.raises(OSError):
            sftp.mkdir(f"/{name}")
        assert name not in sftp.listdir("/")
    finally:
        sftp.close()


def test_a_good_bucket_name_works_everywhere(node: NodeProcess, sftp_user: SftpUser) -> None:
    sftp = paramiko_client(sftp_user)
    try:
        sftp.mkdir("/made-over-sftp.v2")
    finally:
        sftp.close()
    s3 = s3_for(node, sftp_user)
    assert "made-over-sftp.v2" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.put_object(Bucket="made-over-sftp.v2", Key="k", Body=b"x")


@pytest.mark.parametrize("key", BAD_KEYS)
def test_a_key_s3_refuses_is_refused_by_rest(
    node: NodeProcess, sftp_user: SftpUser, key: str
) -> None:
    user = sftp_user.user
    with pytest.raises(ClientError) as info:
        s3_for(node, sftp_user).put_object(Bucket=user.bucket, Key=key, Body=b"x")
    assert info.value.response["Error"]["Code"] == "InvalidArgument"
    r = httpx.post(f"{node.web_url}/api/v1/files", params={"key": key, "bucket": user.bucket},
                   headers=user.api_headers, content=b"x", timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "InvalidKey" and r.json()["status"] == 400
    listed = httpx.get(f"{node.web_url}/api/v1/files", params={"bucket": user.bucket},
                       headers=user.api_headers, timeout=30).json()
    assert all(f["key"] != key for f in listed["files"])


def test_another_tenants_bucket_is_invisible_over_sftp(
    node: NodeProcess, sftp_user: SftpUser
) -> None:
    other = enable_sftp(node)
    try:
        sftp = paramiko_client(sftp_user)
        try:
            with pytest.raises(FileNotFoundError):
                sftp.listdir(f"/{other.user.bucket}")
            with pytest.raises(FileNotFoundError):
                sftp.stat(f"/{other.user.bucket}")
        finally:
            sftp.close()
    finally:
        other.user.client.close()

