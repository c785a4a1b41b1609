"""S3 XML response documents (lists, multipart, delete, copy...) checked with boto3's parsers."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

from protocols.s3 import xml as s3xml
from protocols.s3.xml import (
    BucketInfo,
    DeletedObject,
    DeleteError,
    ObjectInfo,
    Owner,
    PartInfo,
    UploadInfo,
    VersionInfo,
)
from tests.unit.s3_xml_support import NS, OWNER, T1, T2, WEIRD_KEYS, boto_client

# --- list documents read by boto3 ------------------------------------------------------


def _objects(keys):
    return [ObjectInfo(k, T1, f"etag{i}", i * 10, owner=OWNER) for i, k in enumerate(keys)]


@pytest.mark.parametrize("url", [True, False])
def test_boto3_reads_list_objects_v2(url):
    keys = WEIRD_KEYS if url else ["plain.txt", "dir/a b.txt"]
    body = s3xml.render_list_objects_v2(
        "bucket",
        contents=_objects(keys),
        common_prefixes=["dir/sub dir+/"],
        prefix="d r",
        delimiter="/",
        max_keys=2,
        is_truncated=True,
        continuation_token="tok1",
        next_continuation_token="tok2",
        start_after="a+b",
        encoding_type_url=url,
    )
    client, sent = boto_client(body)
    response = client.list_objects_v2(Bucket="bucket", Prefix="d r", Delimiter="/")
    assert "encoding-type=url" in sent[0][1]  # boto3 always asks for url encoding
    assert [o["Key"] for o in response["Contents"]] == keys
    assert response["Contents"][1]["ETag"] == '"etag1"'
    assert response["Contents"][1]["Size"] == 10
    assert response["Contents"][0]["LastModified"] == T1
    assert response["Contents"][0]["StorageClass"] == "STANDARD"
    assert "Owner" not in response["Contents"][0]  # v2 lists owners only on request
    assert response["CommonPrefixes"] == [{"Prefix": "dir/sub dir+/"}]
    assert response["KeyCount"] == len(keys) + 1
    assert response["IsTruncated"] is True
    assert response["NextContinuationToken"] == "tok2"
    assert response["ContinuationToken"] == "tok1"
    assert response["MaxKeys"] == 2
    assert response["Prefix"] == "d r"
    assert response["StartAfter"] == "a+b"


def test_list_objects_v2_encodes_only_when_asked():
    plain = s3xml.render_list_objects_v2("b", contents=_objects(["a b"]))
    encoded = s3xml.render_list_objects_v2("b", contents=_objects(["a b"]), encoding_type_url=True)
    assert b"<Key>a b</Key>" in plain and b"EncodingType" not in plain
    assert b"<Key>a%20b</Key>" in encoded and b"<EncodingType>url</EncodingType>" in encoded


def test_list_objects_v2_fetch_owner():
    body = s3xml.render_list_objects_v2("b", contents=_objects(["k"]), fetch_owner=True)
    client, _ = boto_client(body)
    response = client.list_objects_v2(Bucket="b", FetchOwner=True)
    assert response["Contents"][0]["Owner"] == {"ID": "owner-id", "DisplayName": "owner"}


def test_boto3_reads_list_objects_v1():
    body = s3xml.render_list_objects_v1(
        "bucket",
        contents=_objects(WEIRD_KEYS),
        common_prefixes=["p q/"],
        prefix="",
        marker="m+n",
        next_marker="z z",
        delimiter="/",
        is_truncated=True,
        encoding_type_url=True,
    )
    client, _ = boto_client(body)
    response = client.list_objects(Bucket="bucket", Delimiter="/", Marker="m+n")
    assert [o["Key"] for o in response["Contents"]] == WEIRD_KEYS
    assert response["Contents"][0]["Owner"]["ID"] == "owner-id"
    assert response["Marker"] == "m+n"
    assert response["NextMarker"] == "z z"
    assert response["CommonPrefixes"] == [{"Prefix": "p q/"}]


def test_boto3_reads_list_object_versions_with_interleaved_markers():
    versions = [
        VersionInfo("a b", "v3", True, T2, is_delete_marker=True, owner=OWNER),
        VersionInfo("a b", "v2", False, T1, etag="e2", size=5, owner=OWNER),
        VersionInfo("c+d", "null", True, T1, etag="e1", size=7),
    ]
    body = s3xml.render_list_object_versions(
        "bucket",
        versions=versions,
        key_marker="k m",
        next_key_marker="n k",
        next_version_id_marker="v9",
        is_truncated=True,
        encoding_type_url=True,
    )
    root = ElementTree.fromstring(body)
    entries = [
        c.tag.removeprefix(NS) for c in root if c.tag in (f"{NS}Version", f"{NS}DeleteMarker")
    ]
    assert entries == ["DeleteMarker", "Version", "Version"]
    client, _ = boto_client(body)
    response = client.list_object_versions(Bucket="bucket")
    assert response["DeleteMarkers"] == [
        {
            "Key": "a b",
            "VersionId": "v3",
            "IsLatest": True,
            "LastModified": T2,
            "Owner": {"ID": "owner-id", "DisplayName": "owner"},
        }
    ]
    assert [(v["Key"], v["VersionId"], v["Size"]) for v in response["Versions"]] == [
        ("a b", "v2", 5),
        ("c+d", "null", 7),
    ]
    assert response["Versions"][0]["ETag"] == '"e2"'
    assert response["KeyMarker"] == "k m"
    assert response["NextKeyMarker"] == "n k"
    assert response["NextVersionIdMarker"] == "v9"


def test_boto3_reads_list_buckets():
    body = s3xml.render_list_buckets(
        [BucketInfo("alpha", T1, "eu-central-1"), BucketInfo("beta", T2)], OWNER
    )
    client, _ = boto_client(body)
    response = client.list_buckets()
    assert [(b["Name"], b["CreationDate"]) for b in response["Buckets"]] == [
        ("alpha", T1),
        ("beta", T2),
    ]
    assert response["Buckets"][0]["BucketRegion"] == "eu-central-1"
    assert response["Owner"] == {"ID": "owner-id", "DisplayName": "owner"}


def test_boto3_reads_empty_lists():
    client, _ = boto_client(s3xml.render_list_buckets([], Owner("id")))
    assert client.list_buckets()["Buckets"] == []
    client, _ = boto_client(s3xml.render_list_objects_v2("b", contents=[]))
    response = client.list_objects_v2(Bucket="b")
    assert response["KeyCount"] == 0 and "Contents" not in response


# --- multipart documents ---------------------------------------------------------------


def test_boto3_reads_initiate_multipart_upload():
    client, _ = boto_client(s3xml.render_initiate_multipart_upload("bucket", "k y", "UP-1"))
    response = client.create_multipart_upload(Bucket="bucket", Key="k y")
    assert (response["Bucket"], response["Key"], response["UploadId"]) == ("bucket", "k y", "UP-1")


def test_boto3_round_trips_complete_multipart_upload():
    body = s3xml.render_complete_multipart_upload(
        "http://s3.local:9000/bucket/k",
        "bucket",
        "k",
        "abc-2",
        checksums={"crc32": "AAAAAA==-2"},
        checksum_type="COMPOSITE",
    )
    client, sent = boto_client(body)
    response = client.complete_multipart_upload(
        Bucket="bucket",
        Key="k",
        UploadId="UP-1",
        MultipartUpload={
            "Parts": [
                {"PartNumber": 1, "ETag": '"e1"', "ChecksumCRC32": "DUoRhQ=="},
                {"PartNumber": 2, "ETag": '"e2"', "ChecksumCRC32": "NSRBwg=="},
            ]
        },
    )
    assert response["ETag"] == '"abc-2"'
    assert response["ChecksumCRC32"] == "AAAAAA==-2"
    assert response["ChecksumType"] == "COMPOSITE"
    assert response["Location"] == "http://s3.local:9000/bucket/k"
    parts = s3xml.parse_complete_multipart(sent[0][2])
    assert [(p.part_number, p.etag, dict(p.checksums)) for p in parts] == [
        (1, "e1", {"crc32": "DUoRhQ=="}),
        (2, "e2", {"crc32": "NSRBwg=="}),
    ]


def test_boto3_reads_list_parts():
    body = s3xml.render_list_parts(
        "bucket",
        "k",
        "UP-1",
        parts=[
            PartInfo(1, T1, "e1", 5 << 20, {"CRC32": "DUoRhQ=="}),
            PartInfo(2, T2, "e2", 1),
        ],
        next_part_number_marker=2,
        max_parts=2,
        is_truncated=True,
        owner=OWNER,
    )
    client, _ = boto_client(body)
    response = client.list_parts(Bucket="bucket", Key="k", UploadId="UP-1")
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in response["Parts"]] == [
        (1, '"e1"', 5 << 20),
        (2, '"e2"', 1),
    ]
    assert response["Parts"][0]["ChecksumCRC32"] == "DUoRhQ=="
    assert response["NextPartNumberMarker"] == 2
    assert response["IsTruncated"] is True
    assert response["Initiator"]["ID"] == "owner-id"


def test_boto3_reads_list_multipart_uploads():
    uploads = [UploadInfo("a b", "UP-1", T1, owner=OWNER), UploadInfo("c", "UP-2", T2)]
    body = s3xml.render_list_multipart_uploads(
        "bucket", uploads=uploads, common_prefixes=["p q/"], delimiter="/"
    )
    client, sent = boto_client(body)
    response = client.list_multipart_uploads(Bucket="bucket")
    assert "encoding-type" not in sent[0][1]  # boto3 does not ask here, so no encoding
    assert [(u["Key"], u["UploadId"], u["Initiated"]) for u in response["Uploads"]] == [
        ("a b", "UP-1", T1),
        ("c", "UP-2", T2),
    ]
    assert response["CommonPrefixes"] == [{"Prefix": "p q/"}]
    assert response["Uploads"][0]["Owner"]["ID"] == "owner-id"
    encoded = s3xml.render_list_multipart_uploads(
        "bucket", uploads=uploads, key_marker="k m", encoding_type_url=True
    )
    assert b"<Key>a%20b</Key>" in encoded and b"<KeyMarker>k%20m</KeyMarker>" in encoded


# --- other documents -------------------------------------------------------------------


def test_boto3_round_trips_delete_objects():
    body = s3xml.render_delete_result(
        [DeletedObject("a"), DeletedObject("b", "v1", True, "dm1")],
        [DeleteError("c&d", "AccessDenied", "Access Denied", "v2")],
    )
    client, sent = boto_client(body)
    response = client.delete_objects(
        Bucket="bucket",
        Delete={
            "Objects": [{"Key": "a"}, {"Key": "b", "VersionId": "v1"}, {"Key": "c&d"}],
            "Quiet": False,
        },
    )
    assert response["Deleted"] == [
        {"Key": "a"},
        {"Key": "b", "VersionId": "v1", "DeleteMarker": True, "DeleteMarkerVersionId": "dm1"},
    ]
    assert response["Errors"] == [
        {"Key": "c&d", "VersionId": "v2", "Code": "AccessDenied", "Message": "Access Denied"}
    ]
    request = s3xml.parse_delete_objects(sent[0][2])
    assert [(o.key, o.version_id) for o in request.objects] == [
        ("a", None),
        ("b", "v1"),
        ("c&d", None),
    ]
    assert request.quiet is False


def test_quiet_delete_result_lists_only_errors():
    body = s3xml.render_delete_result(
        [DeletedObject("a")], [DeleteError("b", "InternalError", "x")], quiet=True
    )
    root = ElementTree.fromstring(body)
    assert root.find(f"{NS}Deleted") is None
    assert root.findtext(f"{NS}Error/{NS}Key") == "b"


def test_boto3_reads_copy_object_result():
    client, _ = boto_client(s3xml.render_copy_object_result("etag9", T1, {"crc32c": "sOO8/Q=="}))
    response = client.copy_object(Bucket="b", Key="k", CopySource="src/key")
    assert response["CopyObjectResult"]["ETag"] == '"etag9"'
    assert response["CopyObjectResult"]["LastModified"] == T1
    assert response["CopyObjectResult"]["ChecksumCRC32C"] == "sOO8/Q=="


def test_boto3_reads_copy_part_result():
    client, _ = boto_client(s3xml.render_copy_part_result("etag8", T2))
    response = client.upload_part_copy(
        Bucket="b", Key="k", CopySource="src/key", PartNumber=1, UploadId="u"
    )
    assert response["CopyPartResult"]["ETag"] == '"etag8"'


@pytest.mark.parametrize(("region", "expected"), [("eu-central-1", "eu-central-1"), (None, None)])
def test_boto3_reads_location_constraint(region, expected):
    client, _ = boto_client(s3xml.render_location_constraint(region))
    assert client.get_bucket_location(Bucket="b")["LocationConstraint"] == expected


def test_location_constraint_of_us_east_1_is_empty():
    assert s3xml.render_location_constraint("us-east-1").endswith(
        b'<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>'
    )


def test_boto3_round_trips_versioning_configuration():
    client, sent = boto_client(s3xml.render_versioning_configuration("Enabled"))
    assert client.get_bucket_versioning(Bucket="b")["Status"] == "Enabled"
    client.put_bucket_versioning(Bucket="b", VersioningConfiguration={"Status": "Suspended"})
    assert s3xml.parse_versioning_configuration(sent[1][2]).status == "Suspended"
    client, _ = boto_client(s3xml.render_versioning_configuration(None))
    assert "Status" not in client.get_bucket_versioning(Bucket="b")


def test_boto3_create_bucket_body_parses():
    client, sent = boto_client(b"")
    client.create_bucket(
        Bucket="bucket", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    client.create_bucket(Bucket="bucket2")
    assert s3xml.parse_create_bucket(sent[0][2]).location_constraint == "eu-central-1"
    assert s3xml.parse_create_bucket(sent[1][2]).location_constraint is None
