"""Object and bucket tagging through boto3: the subresources, the x-amz-tagging
header on PutObject / CreateMultipartUpload / CopyObject, and S3's limits."""

from __future__ import annotations

import os
from urllib.parse import urlencode

import pytest
from botocore.exceptions import ClientError

from tests.s3.support import code_of, replace_body, status_of

MiB = 1024 * 1024


def tag_set(tags: dict[str, str]) -> dict:
    return {"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}


def tags_of(s3, bucket: str, key: str, **kw) -> dict[str, str]:
    got = s3.get_object_tagging(Bucket=bucket, Key=key, **kw)
    return {t["Key"]: t["Value"] for t in got["TagSet"]}


def tag_count(response: dict) -> int | None:
    value = response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-tagging-count")
    return int(value) if value is not None else None


def test_put_get_delete_object_tagging(s3, bucket):
    s3.put_object(Bucket=bucket, Key="doc", Body=b"hello")
    assert tags_of(s3, bucket, "doc") == {}
    assert tag_count(s3.head_object(Bucket=bucket, Key="doc")) is None
    etag = s3.head_object(Bucket=bucket, Key="doc")["ETag"]

    tags = {"project": "apollo", "empty": "", "späce key": "välue & <more>"}
    s3.put_object_tagging(Bucket=bucket, Key="doc", Tagging=tag_set(tags))
    assert tags_of(s3, bucket, "doc") == tags
    head = s3.head_object(Bucket=bucket, Key="doc")
    assert tag_count(head) == 3 and head["ETag"] == etag  # tags are not content
    got = s3.get_object(Bucket=bucket, Key="doc")
    assert got["TagCount"] == 3 and got["Body"].read() == b"hello"

    s3.put_object_tagging(Bucket=bucket, Key="doc", Tagging=tag_set({"only": "one"}))
    assert tags_of(s3, bucket, "doc") == {"only": "one"}
    s3.delete_object_tagging(Bucket=bucket, Key="doc")
    assert tags_of(s3, bucket, "doc") == {}
    assert tag_count(s3.head_object(Bucket=bucket, Key="doc")) is None

    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=bucket, Key="missing")
    assert code_of(exc) == "NoSuchKey"
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=bucket, Key="missing", Tagging=tag_set({"a": "b"}))
    assert code_of(exc) == "NoSuchKey"


def test_tag_limits(node, bucket):
    # Without client-side validation, so that the server's own checks answer.
    s3 = node.client(parameter_validation=False)
    s3.put_object(Bucket=bucket, Key="t", Body=b"x")
    ten = {f"k{i}": f"v{i}" for i in range(10)}
    s3.put_object_tagging(Bucket=bucket, Key="t", Tagging=tag_set(ten))
    assert tags_of(s3, bucket, "t") == ten
    longest = {"k" * 128: "v" * 256}
    s3.put_object_tagging(Bucket=bucket, Key="t", Tagging=tag_set(longest))
    assert tags_of(s3, bucket, "t") == longest

    refused = [
        {**ten, "k10": "v10"},      # 11 tags
        {"k" * 129: "v"},           # key too long
        {"k": "v" * 257},           # value too long
        {"": "v"},                  # empty key
        {"aws:reserved": "v"},      # system prefix
    ]
    for tags in refused:
        with pytest.raises(ClientError) as exc:
            s3.put_object_tagging(Bucket=bucket, Key="t", Tagging=tag_set(tags))
        assert (status_of(exc), code_of(exc)) == (400, "InvalidTag"), tags
    dup = {"TagSet": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]}
    with pytest.raises(ClientError) as exc:
        s3.put_object_tagging(Bucket=bucket, Key="t", Tagging=dup)
    assert code_of(exc) == "InvalidTag"
    # Nothing refused was applied.
    assert tags_of(s3, bucket, "t") == longest


def test_malformed_tagging_xml(node, s3, bucket):
    s3.put_object(Bucket=bucket, Key="t", Body=b"x")
    bodies = [b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>",
              b"<Tagging><Nope/></Tagging>", b"<Tagging><TagSet>", b"not xml"]

    for body in bodies:
        client = node.client(request_checksum_calculation="when_required")
        client.meta.events.register("before-sign.s3.PutObjectTagging", replace_body(body))
        with pytest.raises(ClientError) as exc:
            client.put_object_tagging(Bucket=bucket, Key="t", Tagging=tag_set({"a": "b"}))
        assert code_of(exc) == "MalformedXML", body


def test_tagging_header_on_put_and_multipart(s3, bucket):
    tags = {"team": "blue sky", "cost+center": "42", "empty": ""}
    s3.put_object(Bucket=bucket, Key="p", Body=b"x", Tagging=urlencode(tags))
    assert tags_of(s3, bucket, "p") == tags
    assert s3.get_object(Bucket=bucket, Key="p")["TagCount"] == 3

    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="bad", Body=b"x", Tagging="a=1&a=2")
    assert code_of(exc) == "InvalidArgument"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="bad", Body=b"x",
                      Tagging=urlencode({f"k{i}": "v" for i in range(11)}))
    assert code_of(exc) == "InvalidTag"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="bad")
    assert status_of(exc) == 404

    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="stage=upload")["UploadId"]
    # Tags apply at completion, not before.
    with pytest.raises(ClientError):
        s3.get_object_tagging(Bucket=bucket, Key="mp")
    part1 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=1,
                           Body=os.urandom(5 * MiB))["ETag"]
    part2 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=2,
                           Body=b"tail")["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part1},
                                   {"PartNumber": 2, "ETag": part2}]})
    assert tags_of(s3, bucket, "mp") == {"stage": "upload"}
    assert tag_count(s3.head_object(Bucket=bucket, Key="mp")) == 1


def test_copy_tagging_directive(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x", Tagging="a=1&b=2")
    src = {"Bucket": bucket, "Key": "src"}
    s3.copy_object(Bucket=bucket, Key="copied", CopySource=src)
    assert tags_of(s3, bucket, "copied") == {"a": "1", "b": "2"}
    # COPY (the default) ignores x-amz-tagging; REPLACE takes it.
    s3.copy_object(Bucket=bucket, Key="kept", CopySource=src, Tagging="c=3")
    assert tags_of(s3, bucket, "kept") == {"a": "1", "b": "2"}
    s3.copy_object(Bucket=bucket, Key="replaced", CopySource=src, Tagging="c=3",
                   TaggingDirective="REPLACE")
    assert tags_of(s3, bucket, "replaced") == {"c": "3"}
    s3.copy_object(Bucket=bucket, Key="cleared", CopySource=src, TaggingDirective="REPLACE")
    assert tags_of(s3, bucket, "cleared") == {}
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="x", CopySource=src, TaggingDirective="MERGE")
    assert code_of(exc) == "InvalidArgument"


def test_tagging_of_versions(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="v", Body=b"1", Tagging="gen=1")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="v", Body=b"2")["VersionId"]
    assert tags_of(s3, bucket, "v") == {}
    assert tags_of(s3, bucket, "v", VersionId=v1) == {"gen": "1"}
    put = s3.put_object_tagging(Bucket=bucket, Key="v", VersionId=v1,
                                Tagging=tag_set({"gen": "old"}))
    assert put["VersionId"] == v1
    assert tags_of(s3, bucket, "v", VersionId=v1) == {"gen": "old"}
    assert tags_of(s3, bucket, "v", VersionId=v2) == {}
    got = s3.get_object_tagging(Bucket=bucket, Key="v")
    assert got["VersionId"] == v2
    s3.delete_object_tagging(Bucket=bucket, Key="v", VersionId=v1)
    assert tags_of(s3, bucket, "v", VersionId=v1) == {}

    marker = s3.delete_object(Bucket=bucket, Key="v")["VersionId"]
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=bucket, Key="v")
    assert code_of(exc) == "NoSuchKey"
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=bucket, Key="v", VersionId=marker)
    assert (status_of(exc), code_of(exc)) == (405, "MethodNotAllowed")
    with pytest.raises(ClientError) as exc:
        s3.get_object_tagging(Bucket=bucket, Key="v", VersionId="nosuchversion")
    assert code_of(exc) == "NoSuchVersion"


def test_bucket_tagging(s3, bucket):
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket=bucket)
    assert (status_of(exc), code_of(exc)) == (404, "NoSuchTagSet")
    tags = {f"key{i}": f"value {i}" for i in range(50)}
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tag_set(tags))
    got = s3.get_bucket_tagging(Bucket=bucket)
    assert {t["Key"]: t["Value"] for t in got["TagSet"]} == tags
    with pytest.raises(ClientError) as exc:
        s3.put_bucket_tagging(Bucket=bucket, Tagging=tag_set({**tags, "one": "more"}))
    assert code_of(exc) == "InvalidTag"
    s3.put_bucket_tagging(Bucket=bucket, Tagging=tag_set({"env": "prod"}))
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "env", "Value": "prod"}]
    s3.delete_bucket_tagging(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_tagging(Bucket=bucket)
    assert code_of(exc) == "NoSuchTagSet"


def test_other_tenants_cannot_tag(node, s3, bucket):
    s3.put_object(Bucket=bucket, Key="mine", Body=b"x", Tagging="a=1")
    other = node.client(*node.create_account("intruder-tags@example.com"))
    for call, kw in [(other.get_object_tagging, {"Key": "mine"}),
                     (other.put_object_tagging, {"Key": "mine", "Tagging": tag_set({})}),
                     (other.delete_object_tagging, {"Key": "mine"}),
                     (other.get_bucket_tagging, {}),
                     (other.put_bucket_tagging, {"Tagging": tag_set({"x": "y"})})]:
        with pytest.raises(ClientError) as exc:
            call(Bucket=bucket, **kw)
        assert code_of(exc) == "AccessDenied", call
    assert tags_of(s3, bucket, "mine") == {"a": "1"}
