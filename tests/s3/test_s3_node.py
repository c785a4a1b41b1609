"""The S3 endpoint of a real ``cloudstorage serve`` process (the node runtime's
wiring: hypercorn config, trace wrapper, settings), driven by boto3 and curl."""

from __future__ import annotations

import hashlib
import os
import subprocess

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

MiB = 1024 * 1024


def client(node, access_key: str | None = None, secret_key: str | None = None, **config):
    config.setdefault("retries", {"total_max_attempts": 1, "mode": "standard"})
    return boto3.client(
        "s3", endpoint_url=node.s3_url, region_name=node.region,
        aws_access_key_id=access_key or node.access_key,
        aws_secret_access_key=secret_key or node.secret_key, config=BotoConfig(**config),
    )


def test_s3_on_a_running_node(running_node, tmp_path):
    s3 = client(running_node)
    s3.create_bucket(Bucket="node-bucket",
                     CreateBucketConfiguration={"LocationConstraint": running_node.region})
    data = os.urandom(300_000)
    s3.put_object(Bucket="node-bucket", Key="a/b.bin", Body=data, Metadata={"m": "1"})
    got = s3.get_object(Bucket="node-bucket", Key="a/b.bin")
    assert got["Body"].read() == data and got["Metadata"] == {"m": "1"}
    # Multipart through the node, default checksums.
    up = s3.create_multipart_upload(Bucket="node-bucket", Key="mp")["UploadId"]
    p1, p2 = os.urandom(5 * MiB), b"end"
    e1 = s3.upload_part(Bucket="node-bucket", Key="mp", UploadId=up, PartNumber=1,
                        Body=p1)["ETag"]
    e2 = s3.upload_part(Bucket="node-bucket", Key="mp", UploadId=up, PartNumber=2,
                        Body=p2)["ETag"]
    done = s3.complete_multipart_upload(
        Bucket="node-bucket", Key="mp", UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    md5s = hashlib.md5(p1).digest() + hashlib.md5(p2).digest()
    assert done["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-2"'
    # Presigned GET with curl.
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "node-bucket",
                                                          "Key": "a/b.bin"}, ExpiresIn=60)
    out = subprocess.run(["curl", "-sS", url], capture_output=True, timeout=60, check=True)
    assert out.stdout == data
    # Another tenant sees nothing of it.
    other = client(running_node, *running_node.create_account("other@example.com"))
    with pytest.raises(ClientError) as exc:
        other.get_object(Bucket="node-bucket", Key="a/b.bin")
    assert exc.value.response["Error"]["Code"] == "AccessDenied"
    # ... and lists only its own default bucket.
    names = [b["Name"] for b in other.list_buckets()["Buckets"]]
    assert len(names) == 1 and names[0].startswith("default-"), names
    # Errors are S3 XML with a request id.
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="node-bucket", Key="missing")
    assert exc.value.response["Error"]["Code"] == "NoSuchKey"
    assert exc.value.response["ResponseMetadata"]["RequestId"]
