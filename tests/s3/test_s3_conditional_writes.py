"""Conditional writes: If-None-Match: * and If-Match on PUT, copy and
multipart completion, checked in the commit's own transaction."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.s3.support import code_of, status_of

MiB = 1024 * 1024


def test_if_none_match_star_creates_once(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"second", IfNoneMatch="*")
    assert status_of(exc) == 412 and code_of(exc) == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"


def test_if_none_match_star_after_delete_marker(s3: Any, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"old")
    s3.delete_object(Bucket=bucket, Key="k")
    s3.put_object(Bucket=bucket, Key="k", Body=b"new", IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"new"


def test_if_match_replaces_only_the_expected_version(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfMatch='"0123456789abcdef"')
    assert status_of(exc) == 412
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v1"
    s3.put_object(Bucket=bucket, Key="k", Body=b"v2", IfMatch=etag)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v2"
    with pytest.raises(ClientError) as exc:  # the ETag it matched is gone now
        s3.put_object(Bucket=bucket, Key="k", Body=b"v3", IfMatch=etag)
    assert status_of(exc) == 412


def test_if_match_on_a_missing_key_is_no_such_key(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="absent", Body=b"x", IfMatch='"abc"')
    assert status_of(exc) == 404 and code_of(exc) == "NoSuchKey"
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_if_none_match_with_an_etag_is_not_implemented(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", IfNoneMatch='"abc"')
    assert status_of(exc) == 501 and code_of(exc) == "NotImplemented"
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_racing_creators_exactly_one_wins(s3: Any, bucket: str) -> None:
    def create(n: int) -> int:
        try:
            s3.put_object(Bucket=bucket, Key="race", Body=f"writer {n}".encode(),
                          IfNoneMatch="*")
        except ClientError as exc:
            return exc.response["ResponseMetadata"]["HTTPStatusCode"]
        return 200

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(create, range(8)))
    assert sorted(statuses) == [200] + [412] * 7
    winner = statuses.index(200)
    assert s3.get_object(Bucket=bucket, Key="race")["Body"].read() == f"writer {winner}".encode()


def test_copy_honours_destination_conditions(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"source")
    s3.put_object(Bucket=bucket, Key="dst", Body=b"taken")
    source = {"Bucket": bucket, "Key": "src"}
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="dst", CopySource=source, IfNoneMatch="*")
    assert status_of(exc) == 412
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"taken"
    s3.copy_object(Bucket=bucket, Key="fresh", CopySource=source, IfNoneMatch="*")
    assert s3.get_object(Bucket=bucket, Key="fresh")["Body"].read() == b"source"


def test_complete_multipart_refused_keeps_the_upload(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="big", Body=b"existing")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="big", UploadId=upload, PartNumber=1,
                          Body=b"p" * MiB)
    parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=upload,
                                     MultipartUpload=parts, IfNoneMatch="*")
    assert status_of(exc) == 412
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == b"existing"
    # The refusal changed nothing: the upload is still there to complete.
    listed = s3.list_parts(Bucket=bucket, Key="big", UploadId=upload)["Parts"]
    assert [p["PartNumber"] for p in listed] == [1]
    etag = s3.head_object(Bucket=bucket, Key="big")["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=upload,
                                 MultipartUpload=parts, IfMatch=etag)
    assert s3.head_object(Bucket=bucket, Key="big")["ContentLength"] == MiB


def test_delete_object_if_match(s3: Any, bucket: str) -> None:
    """DeleteObject with If-Match deletes only the version it names (412
    otherwise, 404 when there is none), decided in the delete's transaction."""
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"v1")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.delete_object(Bucket=bucket, Key="k", IfMatch='"0123456789abcdef0123456789abcdef"')
    assert (status_of(exc), code_of(exc)) == (412, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v1"
    deleted = s3.delete_object(Bucket=bucket, Key="k", IfMatch=etag)
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    for if_match in (etag, "*"):
        with pytest.raises(ClientError) as exc:
            s3.delete_object(Bucket=bucket, Key="k", IfMatch=if_match)
        assert (status_of(exc), code_of(exc)) == (404, "NoSuchKey")
    s3.put_object(Bucket=bucket, Key="k", Body=b"v2")
    s3.delete_object(Bucket=bucket, Key="k", IfMatch="*")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_delete_object_by_size_or_time_is_not_implemented(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"v1")
    for extra in ({"IfMatchSize": 2}, {"IfMatchLastModifiedTime": "2030-01-01T00:00:00Z"}):
        with pytest.raises(ClientError) as exc:
            s3.delete_object(Bucket=bucket, Key="k", **extra)
        assert (status_of(exc), code_of(exc)) == (501, "NotImplemented"), extra
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v1"


def test_delete_objects_honours_each_etag(s3: Any, bucket: str) -> None:
    etags = {k: s3.put_object(Bucket=bucket, Key=k, Body=k.encode())["ETag"]
             for k in ("a", "b", "c")}
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "a", "ETag": etags["a"]},
        {"Key": "b", "ETag": '"0123456789abcdef0123456789abcdef"'},
        {"Key": "c"},
    ]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["a", "c"]
    assert [(e["Key"], e["Code"]) for e in r["Errors"]] == [("b", "PreconditionFailed")]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["b"]
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "b", "Size": 1}]})
    assert [(e["Key"], e["Code"]) for e in r["Errors"]] == [("b", "NotImplemented")]
