"""GetObject / HeadObject ``?partNumber=N`` and multi-range GETs, through boto3.

S3 answers a part as a range: 206, ``Content-Range`` of the part within the
whole object, the whole object's ETag and ``x-amz-mp-parts-count``.  An object
stored in one piece is its own part 1; beyond the part count is 416
InvalidPartNumber.  Several ranges in one ``Range`` header are ignored (200,
the whole object), as AWS does.
"""

from __future__ import annotations

import os

import pytest
from botocore.exceptions import ClientError

from tests.s3.support import code_of, status_of

MiB = 1024 * 1024


def headers_of(response: dict) -> dict[str, str]:
    return response["ResponseMetadata"]["HTTPHeaders"]


def multipart(s3, bucket: str, key: str, parts: dict[int, bytes]) -> str:
    """Upload ``parts`` (part number -> bytes) and complete them all; the ETag."""
    up = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = []
    for number, data in sorted(parts.items()):
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=number,
                              Body=data)["ETag"]
        done.append({"PartNumber": number, "ETag": etag})
    return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up,
                                        MultipartUpload={"Parts": done})["ETag"]


@pytest.fixture
def three_parts(s3, bucket) -> tuple[str, list[bytes], str]:
    """A multipart object of parts 5 MiB, 5 MiB + 7 and 1234 bytes."""
    parts = [os.urandom(5 * MiB), os.urandom(5 * MiB + 7), os.urandom(1234)]
    etag = multipart(s3, bucket, "mp.bin", dict(enumerate(parts, 1)))
    return "mp.bin", parts, etag


def test_each_part_of_a_multipart_object(s3, bucket, three_parts):
    key, parts, etag = three_parts
    total = sum(len(p) for p in parts)
    start = 0
    for number, data in enumerate(parts, 1):
        head = s3.head_object(Bucket=bucket, Key=key, PartNumber=number)
        assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert head["ContentLength"] == len(data)
        assert head["PartsCount"] == 3
        assert head["ETag"] == etag
        assert head["ContentRange"] == f"bytes {start}-{start + len(data) - 1}/{total}"
        got = s3.get_object(Bucket=bucket, Key=key, PartNumber=number)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["PartsCount"] == 3 and got["ETag"] == etag
        assert got["ContentRange"] == head["ContentRange"]
        assert got["Body"].read() == data
        start += len(data)
    # A plain GET is the whole object and says nothing about parts, as in S3.
    whole = s3.get_object(Bucket=bucket, Key=key)
    assert whole["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "PartsCount" not in whole and "ContentRange" not in whole
    assert whole["Body"].read() == b"".join(parts)


def test_part_number_out_of_range(s3, bucket, three_parts):
    key, _, _ = three_parts
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key, PartNumber=4)
    assert (status_of(exc), code_of(exc)) == (416, "InvalidPartNumber")
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key=key, PartNumber=4)
    assert status_of(exc) == 416
    for bad in (0, 10001):
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket=bucket, Key=key, PartNumber=bad)
        assert (status_of(exc), code_of(exc)) == (400, "InvalidArgument"), bad
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key, PartNumber=1, Range="bytes=0-10")
    assert code_of(exc) == "InvalidRequest"


def test_part_number_of_a_single_part_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="one", Body=b"0123456789")
    etag = s3.head_object(Bucket=bucket, Key="one")["ETag"]
    got = s3.get_object(Bucket=bucket, Key="one", PartNumber=1)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == "bytes 0-9/10" and got["ETag"] == etag
    assert "PartsCount" not in got
    assert got["Body"].read() == b"0123456789"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="one", PartNumber=2)
    assert (status_of(exc), code_of(exc)) == (416, "InvalidPartNumber")
    # An empty object has no range to answer: the whole (empty) object, 200.
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    got = s3.get_object(Bucket=bucket, Key="empty", PartNumber=1)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert got["Body"].read() == b""


def test_sparse_part_numbers_count_in_order(s3, bucket):
    # Parts 1 and 3 completed: the object has 2 parts, addressed 1 and 2.
    first, last = os.urandom(5 * MiB), b"the end"
    etag = multipart(s3, bucket, "sparse", {1: first, 3: last})
    assert etag.endswith('-2"')
    got = s3.get_object(Bucket=bucket, Key="sparse", PartNumber=2)
    assert got["PartsCount"] == 2 and got["Body"].read() == last
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="sparse", PartNumber=3)
    assert code_of(exc) == "InvalidPartNumber"


def test_copy_keeps_parts_and_versions_keep_theirs(s3, bucket, three_parts):
    key, parts, etag = three_parts
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": key})
    got = s3.get_object(Bucket=bucket, Key="copy", PartNumber=3)
    assert got["ETag"] == etag and got["PartsCount"] == 3
    assert got["Body"].read() == parts[2]

    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="v", Body=b"single")["VersionId"]
    multipart(s3, bucket, "v", {1: os.urandom(5 * MiB), 2: b"second"})
    got = s3.get_object(Bucket=bucket, Key="v", PartNumber=2)
    assert got["Body"].read() == b"second"
    old = s3.get_object(Bucket=bucket, Key="v", VersionId=v1, PartNumber=1)
    assert old["Body"].read() == b"single" and "PartsCount" not in old


def test_multiple_ranges_are_ignored_like_aws(s3, bucket):
    # AWS S3 does not serve multipart/byteranges: a Range with several
    # ranges is ignored and the whole object comes back with 200.
    s3.put_object(Bucket=bucket, Key="r", Body=b"0123456789abcdef")
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=0-1,5-9")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "content-range" not in headers_of(got)
    assert got["ContentLength"] == 16 and got["Body"].read() == b"0123456789abcdef"
    head = s3.head_object(Bucket=bucket, Key="r", Range="bytes=0-1,5-9")
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 200 and head["ContentLength"] == 16
    # A single range still is a range.
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=5-9")
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == "bytes 5-9/16" and got["Body"].read() == b"56789"
