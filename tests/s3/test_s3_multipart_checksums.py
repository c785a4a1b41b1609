"""Multipart checksums as S3 documents them: FULL_OBJECT CRCs combined from the
parts, COMPOSITE checksums of the part checksums, the combinations S3 refuses,
and the object's checksum type on reads.  On PostgreSQL metadata, whose column
widths the upload's "<algorithm>:<type>" once overflowed."""

from __future__ import annotations

import base64
import os

import pytest
from botocore.exceptions import ClientError

from protocols.s3 import checksums as cks
from tests.s3.conftest import Server
from tests.s3.support import code_of, status_of

pytestmark = pytest.mark.postgres

MiB = 1024 * 1024
# Two parts: the first at S3's minimum part size, the last shorter.
DATA = os.urandom(5 * MiB + 1000)
PARTS = [DATA[: 5 * MiB], DATA[5 * MiB:]]


@pytest.fixture(scope="module")
def s3_server(pg_s3_server: Server) -> Server:
    """This module's tests run on PostgreSQL metadata."""
    return pg_s3_server


def _member(alg: str) -> str:
    return {"crc32": "ChecksumCRC32", "crc32c": "ChecksumCRC32C", "crc64nvme": "ChecksumCRC64NVME",
            "sha1": "ChecksumSHA1", "sha256": "ChecksumSHA256"}[alg]


def _upload(s3, bucket: str, key: str, alg: str, kind: str | None, *,
            send_part_checksums: bool = True) -> tuple[str, list[dict]]:
    """An upload of PARTS with ``alg`` (and checksum type ``kind``); its id and
    the part list to complete it with."""
    extra = {"ChecksumType": kind} if kind else {}
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm=alg.upper(),
                                    **extra)
    assert up["ChecksumAlgorithm"] == alg.upper()
    uid = up["UploadId"]
    parts = []
    for number, body in enumerate(PARTS, 1):
        # Computed here: botocore needs the CRT for CRC64NVME.
        value = cks.compute_b64(alg, body)
        sent = {_member(alg): value} if send_part_checksums else {}
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=number, Body=body,
                           **sent)
        assert r[_member(alg)] == value
        parts.append({"PartNumber": number, "ETag": r["ETag"], **sent})
    return uid, parts


@pytest.fixture
def plain_s3(node):
    """A client that sends no checksum of its own choosing."""
    return node.client(request_checksum_calculation="when_required",
                       response_checksum_validation="when_required")


@pytest.mark.parametrize("alg", ["crc32", "crc32c", "crc64nvme"])
def test_full_object_crc_of_a_multipart_upload(plain_s3, bucket, alg):
    s3 = plain_s3
    whole = cks.compute_b64(alg, DATA)
    uid, parts = _upload(s3, bucket, "full", alg, "FULL_OBJECT")
    # The client's full-object checksum is verified against the combined parts.
    wrong = base64.b64encode(bytes(len(base64.b64decode(whole)))).decode()
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="full", UploadId=uid,
                                     MultipartUpload={"Parts": parts}, ChecksumType="FULL_OBJECT",
                                     **{_member(alg): wrong})
    assert code_of(exc) == "BadDigest"
    r = s3.complete_multipart_upload(Bucket=bucket, Key="full", UploadId=uid,
                                     MultipartUpload={"Parts": parts}, ChecksumType="FULL_OBJECT",
                                     **{_member(alg): whole})
    assert r[_member(alg)] == whole and r["ChecksumType"] == "FULL_OBJECT"
    for read in (s3.head_object, s3.get_object):
        got = read(Bucket=bucket, Key="full", ChecksumMode="ENABLED")
        assert got[_member(alg)] == whole and got["ChecksumType"] == "FULL_OBJECT"
    assert s3.get_object(Bucket=bucket, Key="full")["Body"].read() == DATA


def test_full_object_crc_without_part_checksums(plain_s3, bucket):
    """Parts sent without a checksum still get the upload's CRC (S3 computes it),
    so the full-object checksum is known and verified."""
    s3 = plain_s3
    uid, parts = _upload(s3, bucket, "bare", "crc32c", "FULL_OBJECT", send_part_checksums=False)
    whole = cks.compute_b64("crc32c", DATA)
    r = s3.complete_multipart_upload(Bucket=bucket, Key="bare", UploadId=uid,
                                     MultipartUpload={"Parts": parts}, ChecksumCRC32C=whole)
    assert r["ChecksumCRC32C"] == whole and r["ChecksumType"] == "FULL_OBJECT"


@pytest.mark.parametrize("alg", ["crc32", "sha256"])
def test_composite_checksum_header_on_completion(plain_s3, bucket, alg):
    s3 = plain_s3
    uid, parts = _upload(s3, bucket, "comp", alg, None)
    digests = [base64.b64decode(cks.compute_b64(alg, p)) for p in PARTS]
    composite = cks.composite_checksum(alg, digests)
    assert composite.endswith("-2")
    bad_value = cks.composite_checksum(alg, digests[::-1])
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="comp", UploadId=uid,
                                     MultipartUpload={"Parts": parts}, **{_member(alg): bad_value})
    assert code_of(exc) == "BadDigest"
    # Asking for the other type than the upload's is a BadDigest too (as AWS documents).
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="comp", UploadId=uid,
                                     MultipartUpload={"Parts": parts}, ChecksumType="FULL_OBJECT")
    assert code_of(exc) == "BadDigest"
    r = s3.complete_multipart_upload(Bucket=bucket, Key="comp", UploadId=uid,
                                     MultipartUpload={"Parts": parts}, ChecksumType="COMPOSITE",
                                     **{_member(alg): composite})
    assert r[_member(alg)] == composite and r["ChecksumType"] == "COMPOSITE"
    got = s3.head_object(Bucket=bucket, Key="comp", ChecksumMode="ENABLED")
    assert got[_member(alg)] == composite and got["ChecksumType"] == "COMPOSITE"


@pytest.mark.parametrize("value", ["AAAA", "!!!!-2", "AAAAAA==-x", "AAAAAAAA-2"])
def test_malformed_checksum_header_on_completion_is_invalid_request(plain_s3, bucket, value):
    s3 = plain_s3
    uid, parts = _upload(s3, bucket, "mal", "crc32", None)
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="mal", UploadId=uid,
                                     MultipartUpload={"Parts": parts}, ChecksumCRC32=value)
    assert (status_of(exc), code_of(exc)) == (400, "InvalidRequest")
    s3.abort_multipart_upload(Bucket=bucket, Key="mal", UploadId=uid)


@pytest.mark.parametrize(("alg", "kind", "message"), [
    ("SHA256", "FULL_OBJECT",
     "The FULL_OBJECT checksum type cannot be used with the sha256 checksum algorithm."),
    ("SHA1", "FULL_OBJECT",
     "The FULL_OBJECT checksum type cannot be used with the sha1 checksum algorithm."),
    ("CRC64NVME", "COMPOSITE",
     "The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm."),
    ("CRC32", "SOMETHING", "Value for x-amz-checksum-type header is invalid."),
    (None, "FULL_OBJECT",
     "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm "
     "header."),
])
def test_checksum_combinations_s3_refuses(plain_s3, bucket, alg, kind, message):
    def add_headers(request, **_):
        request.headers["x-amz-checksum-type"] = kind
        if alg:
            request.headers["x-amz-checksum-algorithm"] = alg

    plain_s3.meta.events.register("before-sign.s3.CreateMultipartUpload", add_headers)
    with pytest.raises(ClientError) as exc:
        plain_s3.create_multipart_upload(Bucket=bucket, Key="refused")
    assert (status_of(exc), code_of(exc)) == (400, "InvalidRequest")
    assert exc.value.response["Error"]["Message"] == message
    assert plain_s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_default_checksum_types(plain_s3, bucket):
    for alg, kind in (("CRC64NVME", "FULL_OBJECT"), ("CRC32", "COMPOSITE"),
                      ("SHA1", "COMPOSITE")):
        up = plain_s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm=alg)
        assert up["ChecksumType"] == kind
        plain_s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=up["UploadId"])


def test_malformed_versus_wrong_checksum_on_put(plain_s3, bucket):
    """A value that cannot be a CRC32 is InvalidRequest; a CRC32 of other bytes is
    BadDigest (AWS's answers to each); neither stores anything."""
    cases = [("AAAA", "InvalidRequest"), ("AAAAAAAA", "InvalidRequest"),
             ("not base64!", "InvalidRequest"), ("AAAAAA==", "BadDigest")]
    for value, code in cases:
        with pytest.raises(ClientError) as exc:
            plain_s3.put_object(Bucket=bucket, Key="k", Body=b"data", ChecksumCRC32=value)
        assert (status_of(exc), code_of(exc)) == (400, code), value
    assert plain_s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_copied_part_gets_the_upload_checksum(plain_s3, bucket):
    s3 = plain_s3
    s3.put_object(Bucket=bucket, Key="src", Body=PARTS[0])
    up = s3.create_multipart_upload(Bucket=bucket, Key="dst", ChecksumAlgorithm="CRC32",
                                    ChecksumType="FULL_OBJECT")["UploadId"]
    copied = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=up, PartNumber=1,
                                 CopySource={"Bucket": bucket, "Key": "src"})["CopyPartResult"]
    assert copied["ChecksumCRC32"] == cks.compute_b64("crc32", PARTS[0])
    last = s3.upload_part(Bucket=bucket, Key="dst", UploadId=up, PartNumber=2, Body=PARTS[1])
    r = s3.complete_multipart_upload(Bucket=bucket, Key="dst", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": copied["ETag"]},
                  {"PartNumber": 2, "ETag": last["ETag"]}]})
    assert r["ChecksumCRC32"] == cks.compute_b64("crc32", DATA)
