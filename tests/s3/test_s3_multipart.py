"""Multipart uploads through boto3: S3's rules and exact chunk reference counts."""

from __future__ import annotations

import hashlib
import os
from collections import Counter

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from tests.s3.support import code_of

MiB = 1024 * 1024


def refcounts_consistent(server) -> tuple[dict[str, int], Counter[str]]:
    """(stored refcounts, references counted from versions and parts) for all chunks."""
    from storage.models import ChunkRef, MultipartPart, ObjectVersion

    async def q():
        refs = {r.chunk_id: r.refcount for r in await ChunkRef.all()}
        expected: Counter[str] = Counter()
        for v in await ObjectVersion.all().values_list("chunks", flat=True):
            expected.update(c for c, _ in v or ())
        for p in await MultipartPart.all().values_list("chunks", flat=True):
            expected.update(c for c, _ in p or ())
        return refs, expected

    async def run():
        return await server.services.db.run(q)

    return server.call(run)


def assert_refcounts(server) -> None:
    refs, expected = refcounts_consistent(server)
    for cid, n in refs.items():
        assert n == expected.get(cid, 0), cid
    assert set(expected) <= set(refs)


@pytest.mark.parametrize("checksums", ["when_supported", "when_required"])
def test_upload_file_100mib(node, bucket, tmp_path, checksums):
    s3 = node.client(request_checksum_calculation=checksums)
    src = tmp_path / "big.bin"
    with src.open("wb") as f:
        for _ in range(100):
            f.write(os.urandom(MiB))
    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB,
                            max_concurrency=4)
    s3.upload_file(str(src), bucket, "big.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == 100 * MiB
    md5s = b""
    with src.open("rb") as f:
        while piece := f.read(8 * MiB):
            md5s += hashlib.md5(piece).digest()
    assert head["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-13"'
    dst = tmp_path / "back.bin"
    s3.download_file(bucket, "big.bin", str(dst), Config=config)
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()
    r = s3.get_object(Bucket=bucket, Key="big.bin", Range=f"bytes={50 * MiB - 10}-{50 * MiB + 9}")
    with src.open("rb") as f:
        f.seek(50 * MiB - 10)
        assert r["Body"].read() == f.read(20)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert_refcounts(node.server)


def test_multipart_rules(s3, bucket, node):
    up = s3.create_multipart_upload(Bucket=bucket, Key="m", ContentType="text/x-m",
                                    Metadata={"a": "1"})["UploadId"]
    big = os.urandom(5 * MiB)
    small = b"tail"
    e1 = s3.upload_part(Bucket=bucket, Key="m", UploadId=up, PartNumber=1, Body=small)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="m", UploadId=up, PartNumber=2, Body=small)["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert code_of(exc) == "EntityTooSmall"
    # Replace part 1 with a big one: its old chunk reference is released.
    e1 = s3.upload_part(Bucket=bucket, Key="m", UploadId=up, PartNumber=1, Body=big)["ETag"]
    assert_refcounts(node.server)
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})
    assert code_of(exc) == "InvalidPartOrder"
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'},
                      {"PartNumber": 2, "ETag": e2}]})
    assert code_of(exc) == "InvalidPart"
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 3, "ETag": e2}]})
    assert code_of(exc) == "InvalidPart"
    parts = s3.list_parts(Bucket=bucket, Key="m", UploadId=up)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 * MiB), (2, 4)]
    page = s3.list_parts(Bucket=bucket, Key="m", UploadId=up, MaxParts=1)
    assert page["IsTruncated"] and page["NextPartNumberMarker"] == 1
    r = s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    expected = hashlib.md5(hashlib.md5(big).digest() + hashlib.md5(small).digest()).hexdigest()
    assert r["ETag"] == f'"{expected}-2"'
    got = s3.get_object(Bucket=bucket, Key="m")
    assert got["Body"].read() == big + small
    assert got["ContentType"] == "text/x-m" and got["Metadata"] == {"a": "1"}
    with pytest.raises(ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="m", UploadId=up, PartNumber=3, Body=b"late")
    assert code_of(exc) == "NoSuchUpload"
    assert_refcounts(node.server)


def test_abort_releases_parts_and_unlisted_parts_are_dropped(s3, bucket, node):
    up = s3.create_multipart_upload(Bucket=bucket, Key="a")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="a", UploadId=up, PartNumber=1, Body=os.urandom(100_000))
    listed = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in listed] == [("a", up)]
    s3.abort_multipart_upload(Bucket=bucket, Key="a", UploadId=up)
    with pytest.raises(ClientError) as exc:
        s3.abort_multipart_upload(Bucket=bucket, Key="a", UploadId=up)
    assert code_of(exc) == "NoSuchUpload"
    assert_refcounts(node.server)
    # Complete with only part 1: part 2's data is released, not kept.
    up = s3.create_multipart_upload(Bucket=bucket, Key="b")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="b", UploadId=up, PartNumber=1, Body=b"one")["ETag"]
    s3.upload_part(Bucket=bucket, Key="b", UploadId=up, PartNumber=2, Body=os.urandom(9000))
    s3.complete_multipart_upload(Bucket=bucket, Key="b", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}]})
    assert s3.get_object(Bucket=bucket, Key="b")["Body"].read() == b"one"
    assert_refcounts(node.server)
    s3.delete_object(Bucket=bucket, Key="b")
    assert_refcounts(node.server)
    s3.delete_bucket(Bucket=bucket)


def test_upload_part_copy_and_checksums(s3, bucket):
    source = os.urandom(6 * MiB)
    s3.put_object(Bucket=bucket, Key="src", Body=source)
    up = s3.create_multipart_upload(Bucket=bucket, Key="dst", ChecksumAlgorithm="CRC32")
    uid = up["UploadId"]
    p1 = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=1,
                             CopySource={"Bucket": bucket, "Key": "src"},
                             CopySourceRange=f"bytes=0-{5 * MiB - 1}")
    p2 = s3.upload_part(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=2, Body=b"end",
                        ChecksumAlgorithm="CRC32")
    with pytest.raises(ClientError) as exc:
        s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=uid, PartNumber=3,
                            CopySource={"Bucket": bucket, "Key": "src"},
                            CopySourceRange=f"bytes=0-{7 * MiB}")
    assert code_of(exc) == "InvalidArgument"
    r = s3.complete_multipart_upload(Bucket=bucket, Key="dst", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]},
                  {"PartNumber": 2, "ETag": p2["ETag"], "ChecksumCRC32": p2["ChecksumCRC32"]}]})
    assert r["ETag"].endswith('-2"')
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == source[: 5 * MiB] + b"end"


def test_multipart_quota_on_complete(node, s3_server):
    """Parts may be stored, but completing over the quota is refused."""
    from storage.models import Account

    s3 = node.client()
    s3.create_bucket(Bucket=f"q-{node.access_key.lower()[:10]}")
    name = f"q-{node.access_key.lower()[:10]}"
    up = s3.create_multipart_upload(Bucket=name, Key="q")["UploadId"]
    e1 = s3.upload_part(Bucket=name, Key="q", UploadId=up, PartNumber=1,
                        Body=os.urandom(300_000))["ETag"]

    async def shrink():
        async def q():
            from storage.models import AccessKey

            key = await AccessKey.get(access_key=node.access_key)
            await Account.filter(id=key.account_id).update(quota_bytes=1000)

        await s3_server.services.db.run(q)

    s3_server.call(shrink)
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=name, Key="q", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}]})
    assert code_of(exc) == "QuotaExceeded"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=name, Key="q")
    # The upload stays open; presigned and plain PUTs are refused too.
    assert len(s3.list_multipart_uploads(Bucket=name)["Uploads"]) == 1
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=name, Key="p", Body=os.urandom(2000))
    assert code_of(exc) == "QuotaExceeded"


def test_retried_complete_answers_like_the_first(s3, bucket):
    """A client that lost the answer to its completion and retries it gets the
    same success, not NoSuchUpload; other part lists still do not."""
    upload = s3.create_multipart_upload(Bucket=bucket, Key="again")["UploadId"]
    etags = [s3.upload_part(Bucket=bucket, Key="again", UploadId=upload, PartNumber=n,
                            Body=bytes([n]) * (5 * MiB if n == 1 else 100))["ETag"]
             for n in (1, 2)]
    parts = {"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]}
    first = s3.complete_multipart_upload(Bucket=bucket, Key="again", UploadId=upload,
                                         MultipartUpload=parts)
    again = s3.complete_multipart_upload(Bucket=bucket, Key="again", UploadId=upload,
                                         MultipartUpload=parts)
    assert again["ETag"] == first["ETag"] and again["ETag"].endswith('-2"')
    assert s3.head_object(Bucket=bucket, Key="again")["ContentLength"] == 5 * MiB + 100
    for other in ({"Parts": parts["Parts"][:1]}, {"Parts": [{"PartNumber": 1, "ETag": '"x"'}]}):
        with pytest.raises(ClientError) as exc:
            s3.complete_multipart_upload(Bucket=bucket, Key="again", UploadId=upload,
                                         MultipartUpload=other)
        assert code_of(exc) == "NoSuchUpload"
    with pytest.raises(ClientError) as exc:  # the same id under another key
        s3.complete_multipart_upload(Bucket=bucket, Key="other", UploadId=upload,
                                     MultipartUpload=parts)
    assert code_of(exc) == "NoSuchUpload"
