"""S3 XML: rendering (checked with boto3's own parsers) and hardened request parsing."""

from __future__ import annotations

import datetime as dt
from urllib.parse import unquote, unquote_plus
from xml.etree import ElementTree

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError

from protocols.s3 import errors
from protocols.s3 import xml as s3xml
from protocols.s3.errors import S3Error, signature_does_not_match
from protocols.s3.xml import (
    BucketInfo,
    DeletedObject,
    DeleteError,
    Elements,
    ObjectInfo,
    Owner,
    PartInfo,
    UploadInfo,
    VersionInfo,
)

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
T1 = dt.datetime(2006, 2, 27, 12, 34, 56, 789000, tzinfo=dt.UTC)
T2 = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
OWNER = Owner("owner-id", "owner")
WEIRD_KEYS = [
    "plain.txt",
    "dir/a b+c.txt",
    "sp\u00e9cial/\u2603&<>'\".bin",
    "pct%20literal",
    "t\tab",
]


# --- a boto3 client answering with our documents --------------------------------------


class _Raw:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_kwargs):
        yield self._data

    def read(self, *_args, **_kwargs) -> bytes:
        data, self._data = self._data, b""
        return data


def _client(body: bytes, status: int = 200, headers: dict[str, str] | None = None):
    """A boto3 S3 client whose every call gets ``body`` back; returns (client, sent)."""
    sent: list[tuple[str, str, bytes]] = []

    def before_send(request, **_kwargs):
        data = request.body
        data = data.read() if hasattr(data, "read") else (data or b"")
        sent.append((request.method, request.url, bytes(data)))
        return AWSResponse(request.url, status, headers or {}, _Raw(body))

    client = boto3.client(
        "s3",
        endpoint_url="http://s3.local:9000",
        region_name="us-east-1",
        aws_access_key_id="AK",
        aws_secret_access_key="SK",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 0}),
    )
    client.meta.events.register("before-send", before_send)
    return client, sent


# --- values ----------------------------------------------------------------------------


def test_format_timestamp():
    assert s3xml.format_timestamp(T1) == "2006-02-27T12:34:56.789Z"
    assert s3xml.format_timestamp(T1.replace(tzinfo=None)) == "2006-02-27T12:34:56.789Z"
    paris = dt.timezone(dt.timedelta(hours=1))
    assert s3xml.format_timestamp(dt.datetime(2006, 2, 27, 13, 34, 56, tzinfo=paris)) == (
        "2006-02-27T12:34:56.000Z"
    )
    assert s3xml.format_timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert s3xml.format_timestamp(1.5) == "1970-01-01T00:00:01.500Z"


def test_etag_quoting_is_idempotent():
    assert s3xml.quote_etag("abc") == '"abc"'
    assert s3xml.quote_etag('"abc"') == '"abc"'
    assert s3xml.quote_etag("abc-3") == '"abc-3"'
    assert s3xml.unquote_etag(' "abc" ') == "abc"


def test_encoding_type_parameter():
    assert s3xml.parse_encoding_type(None) is False
    assert s3xml.parse_encoding_type("url") is True
    assert s3xml.parse_encoding_type("URL") is True
    with pytest.raises(S3Error) as info:
        s3xml.parse_encoding_type("base64")
    err = info.value
    assert err.code == "InvalidArgument"
    assert err.extra == {"ArgumentName": "encoding-type", "ArgumentValue": "base64"}


@pytest.mark.parametrize("key", [*WEIRD_KEYS, "a+b c", "100%", "\u00fc/\U0001f600"])
def test_url_encode_round_trips_with_every_sdk_decoder(key):
    encoded = s3xml.url_encode(key)
    assert encoded.isascii() and " " not in encoded and "+" not in encoded
    assert unquote_plus(encoded) == key
    assert unquote(encoded) == key


def test_escape_text_handles_specials_and_control_characters():
    assert s3xml.escape_text("a&b<c>d") == "a&amp;b&lt;c&gt;d"
    assert s3xml.escape_text("x\ry\x01") == "x&#xD;y&#x1;"
    assert s3xml.escape_text("tab\tnl\n\"'") == "tab\tnl\n\"'"


# --- generic renderer ------------------------------------------------------------------


def test_render_document_shapes():
    body = s3xml.render_document(
        "Root",
        {
            "Text": "a<b",
            "Missing": None,
            "Number": 42,
            "Flag": False,
            "When": T1,
            "Repeated": ["x", "y"],
            "Nested": {"Inner": "v", "Skip": None},
            "Empty": {},
        },
    )
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ElementTree.fromstring(body)
    assert root.tag == f"{NS}Root"
    assert root.findtext(f"{NS}Text") == "a<b"
    assert root.find(f"{NS}Missing") is None
    assert root.findtext(f"{NS}Number") == "42"
    assert root.findtext(f"{NS}Flag") == "false"
    assert root.findtext(f"{NS}When") == "2006-02-27T12:34:56.789Z"
    assert [e.text for e in root.findall(f"{NS}Repeated")] == ["x", "y"]
    assert root.findtext(f"{NS}Nested/{NS}Inner") == "v"
    assert root.find(f"{NS}Nested/{NS}Skip") is None
    assert root.find(f"{NS}Empty") is not None


def test_render_document_elements_keep_interleaved_order():
    body = s3xml.render_document("R", Elements([("A", "1"), ("B", "2"), ("A", "3")]))
    assert b"<A>1</A><B>2</B><A>3</A>" in body


def test_render_document_empty_root_and_no_namespace():
    assert s3xml.render_document("Empty", None).endswith(
        b'<Empty xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>'
    )
    assert s3xml.render_document("Plain", {"A": "1"}, namespace=None).endswith(
        b"<Plain><A>1</A></Plain>"
    )


def test_render_document_rejects_unknown_types():
    with pytest.raises(TypeError):
        s3xml.render_document("R", {"A": object()})


def test_carriage_return_survives_a_parse():
    body = s3xml.render_document("R", {"Key": "a\r\nb"})
    assert ElementTree.fromstring(body).findtext(f"{NS}Key") == "a\r\nb"


# --- errors ----------------------------------------------------------------------------


def test_render_error_document():
    err = S3Error("NoSuchKey", resource="/bucket/a&b", extra={"Key": "a&b"})
    root = ElementTree.fromstring(s3xml.render_error(err, "REQ123", "HOST456"))
    assert root.tag == "Error"  # S3 errors carry no namespace
    assert [child.tag for child in root] == [
        "Code", "Message", "Resource", "Key", "RequestId", "HostId",
    ]  # fmt: skip
    assert root.findtext("Code") == "NoSuchKey"
    assert root.findtext("Message") == "The specified key does not exist."
    assert root.findtext("Resource") == "/bucket/a&b"
    assert root.findtext("Key") == "a&b"
    assert root.findtext("RequestId") == "REQ123"
    assert root.findtext("HostId") == "HOST456"


def test_render_error_never_leaks_detail_and_skips_304_bodies():
    err = S3Error("InternalError", detail="db password is hunter2")
    assert b"hunter2" not in s3xml.render_error(err, "r")
    assert s3xml.render_error(S3Error("NotModified"), "r") == b""


def test_signature_error_fields_render():
    err = signature_does_not_match("AK", "AWS4-HMAC-SHA256\nx", "GET\n/\n", "abc")
    root = ElementTree.fromstring(s3xml.render_error(err, "r"))
    assert root.findtext("StringToSign") == "AWS4-HMAC-SHA256\nx"
    assert root.findtext("CanonicalRequest") == "GET\n/\n"
    assert root.findtext("StringToSignBytes").startswith("41 57 53 34")


REQUIRED_STATUSES = {
    "AccessDenied": 403, "InvalidAccessKeyId": 403, "SignatureDoesNotMatch": 403,
    "RequestTimeTooSkewed": 403, "AuthorizationHeaderMalformed": 400,
    "AuthorizationQueryParametersError": 400, "ExpiredToken": 400, "InvalidBucketName": 400,
    "NoSuchBucket": 404, "NoSuchKey": 404, "NoSuchUpload": 404, "NoSuchVersion": 404,
    "BucketAlreadyExists": 409, "BucketAlreadyOwnedByYou": 409, "BucketNotEmpty": 409,
    "TooManyBuckets": 400, "QuotaExceeded": 403, "TooManyRequests": 429,
    "InvalidArgument": 400, "InvalidRequest": 400, "InvalidRange": 416,
    "PreconditionFailed": 412, "NotModified": 304, "MalformedXML": 400, "InvalidDigest": 400,
    "BadDigest": 400, "XAmzContentSHA256Mismatch": 400, "InvalidPart": 400,
    "InvalidPartOrder": 400, "EntityTooSmall": 400, "EntityTooLarge": 400,
    "KeyTooLongError": 400, "IncompleteBody": 400, "MissingContentLength": 411,
    "MethodNotAllowed": 405, "NotImplemented": 501, "InternalError": 500,
    "RequestHeaderSectionTooLarge": 400, "MaxMessageLengthExceeded": 400,
    "InvalidChunkSizeError": 400, "InvalidStorageClass": 400, "MalformedTrailerError": 400,
    "SlowDown": 503,
}  # fmt: skip


@pytest.mark.parametrize(("code", "status"), sorted(REQUIRED_STATUSES.items()))
def test_error_table_statuses(code, status):
    err = S3Error(code)
    assert (err.code, err.status) == (code, status)
    assert errors.error_status(code) == status
    assert err.message == errors.ERROR_TABLE[code][1] and err.message
    assert err.has_body is (status != 304)
    assert str(err).startswith(f"{code}: ")


def test_error_overrides_and_unknown_codes():
    err = S3Error("NoSuchKey", "custom", status=410).with_resource("/b/k")
    assert (err.message, err.status, err.resource) == ("custom", 410, "/b/k")
    assert S3Error("MyOwnCode", status=418).message == "MyOwnCode"
    with pytest.raises(ValueError):
        S3Error("NoSuchThing")
    assert "NoSuchKey" in repr(S3Error("NoSuchKey"))


def test_error_constructors_carry_aws_fields():
    err = errors.too_many_requests(7)
    assert (err.status, err.headers) == (429, {"Retry-After": "7"})
    assert errors.too_many_requests(-3).headers == {"Retry-After": "0"}
    err = errors.entity_too_small(100, 5 << 20)
    assert err.extra == {"ProposedSize": "100", "MinSizeAllowed": str(5 << 20)}
    err = errors.entity_too_large(10, 5)
    assert (err.code, err.extra["MaxSizeAllowed"]) == ("EntityTooLarge", "5")
    err = errors.method_not_allowed("POST", "OBJECT")
    assert (err.status, err.extra) == (405, {"Method": "POST", "ResourceType": "OBJECT"})
    assert errors.not_implemented("Object Lock").message == "Object Lock is not implemented"
    assert errors.not_implemented().message == errors.ERROR_TABLE["NotImplemented"][1]
    assert errors.access_denied().message == "Access Denied"
    assert errors.access_denied("nope").message == "nope"
    err = errors.request_expired("2013-05-25T00:00:00Z", "2013-05-26T00:00:00Z", 86400)
    assert (err.code, err.message) == ("AccessDenied", "Request has expired")
    err = errors.request_time_too_skewed("20130524T000000Z", "20130525T000000Z", 900000)
    assert err.extra["MaxAllowedSkewMilliseconds"] == "900000"
    err = errors.key_too_long(2000, 1024)
    assert err.extra == {"Size": "2000", "MaxSizeAllowed": "1024"}
    err = errors.malformed_xml("line 3")
    assert (err.code, err.detail) == ("MalformedXML", "line 3")
    root = ElementTree.fromstring(s3xml.render_error(errors.entity_too_small(1, 2), "r"))
    assert root.findtext("ProposedSize") == "1" and root.findtext("MinSizeAllowed") == "2"


@pytest.mark.parametrize(
    ("err", "status"),
    [
        (S3Error("NoSuchBucket"), 404),
        (S3Error("BucketNotEmpty"), 409),
        (S3Error("QuotaExceeded"), 403),
        (S3Error("InvalidRange"), 416),
        (S3Error("TooManyRequests"), 429),
    ],
)
def test_boto3_reads_our_error_documents(err, status):
    client, _ = _client(s3xml.render_error(err, "REQ-1", "HOST-1"), status=status)
    with pytest.raises(ClientError) as info:
        client.list_objects_v2(Bucket="bucket")
    error = info.value.response["Error"]
    assert error["Code"] == err.code
    assert error["Message"] == err.message
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


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
    client, sent = _client(body)
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
    client, _ = _client(body)
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
    client, _ = _client(body)
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
    client, _ = _client(body)
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
    client, _ = _client(body)
    response = client.list_buckets()
    assert [(b["Name"], b["CreationDate"]) for b in response["Buckets"]] == [
        ("alpha", T1),
        ("beta", T2),
    ]
    assert response["Buckets"][0]["BucketRegion"] == "eu-central-1"
    assert response["Owner"] == {"ID": "owner-id", "DisplayName": "owner"}


def test_boto3_reads_empty_lists():
    client, _ = _client(s3xml.render_list_buckets([], Owner("id")))
    assert client.list_buckets()["Buckets"] == []
    client, _ = _client(s3xml.render_list_objects_v2("b", contents=[]))
    response = client.list_objects_v2(Bucket="b")
    assert response["KeyCount"] == 0 and "Contents" not in response


# --- multipart documents ---------------------------------------------------------------


def test_boto3_reads_initiate_multipart_upload():
    client, _ = _client(s3xml.render_initiate_multipart_upload("bucket", "k y", "UP-1"))
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
    client, sent = _client(body)
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
    client, _ = _client(body)
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
    client, sent = _client(body)
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
    client, sent = _client(body)
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
    client, _ = _client(s3xml.render_copy_object_result("etag9", T1, {"crc32c": "sOO8/Q=="}))
    response = client.copy_object(Bucket="b", Key="k", CopySource="src/key")
    assert response["CopyObjectResult"]["ETag"] == '"etag9"'
    assert response["CopyObjectResult"]["LastModified"] == T1
    assert response["CopyObjectResult"]["ChecksumCRC32C"] == "sOO8/Q=="


def test_boto3_reads_copy_part_result():
    client, _ = _client(s3xml.render_copy_part_result("etag8", T2))
    response = client.upload_part_copy(
        Bucket="b", Key="k", CopySource="src/key", PartNumber=1, UploadId="u"
    )
    assert response["CopyPartResult"]["ETag"] == '"etag8"'


@pytest.mark.parametrize(("region", "expected"), [("eu-central-1", "eu-central-1"), (None, None)])
def test_boto3_reads_location_constraint(region, expected):
    client, _ = _client(s3xml.render_location_constraint(region))
    assert client.get_bucket_location(Bucket="b")["LocationConstraint"] == expected


def test_location_constraint_of_us_east_1_is_empty():
    assert s3xml.render_location_constraint("us-east-1").endswith(
        b'<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>'
    )


def test_boto3_round_trips_versioning_configuration():
    client, sent = _client(s3xml.render_versioning_configuration("Enabled"))
    assert client.get_bucket_versioning(Bucket="b")["Status"] == "Enabled"
    client.put_bucket_versioning(Bucket="b", VersioningConfiguration={"Status": "Suspended"})
    assert s3xml.parse_versioning_configuration(sent[1][2]).status == "Suspended"
    client, _ = _client(s3xml.render_versioning_configuration(None))
    assert "Status" not in client.get_bucket_versioning(Bucket="b")


def test_boto3_create_bucket_body_parses():
    client, sent = _client(b"")
    client.create_bucket(
        Bucket="bucket", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    client.create_bucket(Bucket="bucket2")
    assert s3xml.parse_create_bucket(sent[0][2]).location_constraint == "eu-central-1"
    assert s3xml.parse_create_bucket(sent[1][2]).location_constraint is None


# --- hardened parsing ------------------------------------------------------------------

DELETE_NS = b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'


def _malformed(body: bytes, parser=s3xml.parse_delete_objects) -> S3Error:
    with pytest.raises(S3Error) as info:
        parser(body)
    return info.value


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<Delete><Object><Key>&lol3;</Key></Object></Delete>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Delete><Object><Key>&xxe;</Key></Object></Delete>"""


@pytest.mark.parametrize(
    "body",
    [
        BILLION_LAUGHS,
        EXTERNAL_ENTITY,
        b'<!DOCTYPE Delete SYSTEM "http://example.com/x.dtd"><Delete/>',
        # The same attacks in UTF-16 slip past a byte search; expat's handlers stop them.
        BILLION_LAUGHS.replace(b'version="1.0"', b'version="1.0" encoding="UTF-16"')
        .decode()
        .encode("utf-16"),
        EXTERNAL_ENTITY.decode().encode("utf-16"),
    ],
    ids=["billion-laughs", "xxe", "external-dtd", "utf16-laughs", "utf16-xxe"],
)
def test_dtds_are_refused(body):
    err = _malformed(body)
    assert err.code == "MalformedXML"
    assert "DTD" in (err.detail or "")


@pytest.mark.parametrize(
    "body",
    [
        b"<Delete><Object><Key>a</Key></Object>",  # unclosed
        b"<Delete><Object><Key>a</Key></Object></Delete><Delete/>",  # two roots
        b"not xml at all",
        b"<Delete><Object><Key>&undefined;</Key></Object></Delete>",
        b"<Delete><Object><Key>&#x1;</Key></Object></Delete>",  # invalid XML character
        b"",
        b"   \n",
    ],
)
def test_ill_formed_documents_are_malformed_xml(body):
    assert _malformed(body).code == "MalformedXML"


def test_oversized_bodies_are_refused_before_parsing():
    body = DELETE_NS + b"<Object><Key>" + b"k" * 2000 + b"</Key></Object></Delete>"
    with pytest.raises(S3Error) as info:
        s3xml.parse_delete_objects(body, max_size=1024)
    assert info.value.code == "MaxMessageLengthExceeded"
    with pytest.raises(S3Error) as info:
        s3xml.parse_xml(b"<a>" + b" " * (s3xml.MAX_XML_BODY_SIZE + 1) + b"</a>")
    assert info.value.code == "MaxMessageLengthExceeded"


def test_parse_xml_strips_any_namespace():
    root = s3xml.parse_xml(b'<x:A xmlns:x="urn:other"><x:B>1</x:B><C>2</C></x:A>')
    assert root.tag == "A" and [c.tag for c in root] == ["B", "C"]


def test_parse_delete_objects_details():
    body = (
        DELETE_NS + b"<Quiet> TRUE </Quiet>"
        b"<Object><Key>  spaced key  </Key></Object>"
        b"<Object><Key>a&amp;b&lt;c</Key><VersionId>v1</VersionId></Object>"
        b'<Object><Key>c</Key><ETag>"e"</ETag><Size>12</Size>'
        b"<LastModifiedTime>2024-01-01T00:00:00Z</LastModifiedTime></Object>"
        b"</Delete>"
    )
    request = s3xml.parse_delete_objects(body)
    assert request.quiet is True
    assert request.objects[0].key == "  spaced key  "
    assert (request.objects[1].key, request.objects[1].version_id) == ("a&b<c", "v1")
    third = request.objects[2]
    assert (third.etag, third.size, third.last_modified_time) == (
        '"e"',
        12,
        "2024-01-01T00:00:00Z",
    )


def test_parse_delete_objects_without_namespace_and_quiet_defaults_false():
    request = s3xml.parse_delete_objects(b"<Delete><Object><Key>k</Key></Object></Delete>")
    assert request.quiet is False and request.objects[0].key == "k"


def test_parse_delete_objects_limits():
    objects = b"<Object><Key>k</Key></Object>" * 1000
    assert len(s3xml.parse_delete_objects(b"<Delete>" + objects + b"</Delete>").objects) == 1000
    assert _malformed(b"<Delete>" + objects + objects[:29] + b"</Delete>").code == "MalformedXML"
    assert _malformed(b"<Delete><Quiet>true</Quiet></Delete>").code == "MalformedXML"


@pytest.mark.parametrize(
    "body",
    [
        b"<Delete><Object><VersionId>v</VersionId></Object></Delete>",  # no key
        b"<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>",
        b"<Delete><Object><Key>a</Key><Color>red</Color></Object></Delete>",
        b"<Delete><Object><Key>a<b/></Key></Object></Delete>",
        b"<Delete><Object><Key>a</Key></Object><Quiet>maybe</Quiet></Delete>",
        b"<Delete><Object><Key>a</Key></Object><Quiet>true</Quiet><Quiet>true</Quiet></Delete>",
        b"<Delete><Object><Key>a</Key><Size>big</Size></Object></Delete>",
        b"<Delete>stray<Object><Key>a</Key></Object></Delete>",
        b"<Delete><Object><Key>a</Key></Object>stray</Delete>",
        b"<Remove><Object><Key>a</Key></Object></Remove>",
        b"<Delete><Thing/></Delete>",
    ],
)
def test_parse_delete_objects_is_strict(body):
    assert _malformed(body).code == "MalformedXML"


def test_parse_complete_multipart_details():
    body = (
        b'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Part><PartNumber> 3 </PartNumber><ETag>&quot;e3&quot;</ETag></Part>"
        b"<Part><ETag>e1</ETag><PartNumber>1</PartNumber>"
        b"<ChecksumSHA256>abc=</ChecksumSHA256></Part>"
        b"</CompleteMultipartUpload>"
    )
    parts = s3xml.parse_complete_multipart(body)
    # Order is kept as sent: InvalidPartOrder is the caller's decision.
    assert [(p.part_number, p.etag) for p in parts] == [(3, "e3"), (1, "e1")]
    assert dict(parts[1].checksums) == {"sha256": "abc="}


@pytest.mark.parametrize("number", [b"0", b"10001", b"-1"])
def test_parse_complete_multipart_part_number_range(number):
    body = b"<CompleteMultipartUpload><Part><PartNumber>" + number
    body += b"</PartNumber><ETag>e</ETag></Part></CompleteMultipartUpload>"
    with pytest.raises(S3Error) as info:
        s3xml.parse_complete_multipart(body)
    assert info.value.code == ("MalformedXML" if number == b"-1" else "InvalidArgument")


@pytest.mark.parametrize(
    "body",
    [
        b"<CompleteMultipartUpload></CompleteMultipartUpload>",
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part>"
        b"</CompleteMultipartUpload>",
        b"<CompleteMultipartUpload><Part><ETag>e</ETag></Part></CompleteMultipartUpload>",
        b"<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>e</ETag></Part>"
        b"</CompleteMultipartUpload>",
        b'<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>""</ETag></Part>'
        b"</CompleteMultipartUpload>",
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>e</ETag>"
        b"<Size>1</Size></Part></CompleteMultipartUpload>",
        b"<CompleteMultipartUpload><Extra/></CompleteMultipartUpload>",
        b"<Complete><Part><PartNumber>1</PartNumber><ETag>e</ETag></Part></Complete>",
    ],
)
def test_parse_complete_multipart_is_strict(body):
    assert _malformed(body, s3xml.parse_complete_multipart).code == "MalformedXML"


def test_parse_complete_multipart_part_count_limit():
    part = b"<Part><PartNumber>1</PartNumber><ETag>e</ETag></Part>"
    ok = b"<CompleteMultipartUpload>" + part * 10000 + b"</CompleteMultipartUpload>"
    assert len(s3xml.parse_complete_multipart(ok)) == 10000
    too_many = b"<CompleteMultipartUpload>" + part * 10001 + b"</CompleteMultipartUpload>"
    assert _malformed(too_many, s3xml.parse_complete_multipart).code == "MalformedXML"


def test_parse_create_bucket():
    assert s3xml.parse_create_bucket(b"").location_constraint is None
    assert s3xml.parse_create_bucket(b"  ").location_constraint is None
    body = (
        b'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<LocationConstraint> eu-west-3 </LocationConstraint></CreateBucketConfiguration>"
    )
    assert s3xml.parse_create_bucket(body).location_constraint == "eu-west-3"
    empty = b"<CreateBucketConfiguration><LocationConstraint/></CreateBucketConfiguration>"
    assert s3xml.parse_create_bucket(empty).location_constraint is None
    directory = (
        b"<CreateBucketConfiguration><Location><Name>usw2-az1</Name></Location>"
        b"<Bucket><Type>Directory</Type></Bucket></CreateBucketConfiguration>"
    )
    assert s3xml.parse_create_bucket(directory).location_constraint is None
    for bad in (
        b"<Bucket/>",
        b"<CreateBucketConfiguration><Region>x</Region></CreateBucketConfiguration>",
        b"<CreateBucketConfiguration><LocationConstraint>a</LocationConstraint>"
        b"<LocationConstraint>b</LocationConstraint></CreateBucketConfiguration>",
    ):
        assert _malformed(bad, s3xml.parse_create_bucket).code == "MalformedXML"


def test_parse_versioning_configuration():
    parse = s3xml.parse_versioning_configuration
    assert (
        parse(b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>").status
        == "Enabled"
    )
    config = parse(
        b'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Status>Suspended</Status><MfaDelete>Disabled</MfaDelete></VersioningConfiguration>"
    )
    assert (config.status, config.mfa_delete) == ("Suspended", "Disabled")
    assert parse(b"<VersioningConfiguration/>").status is None
    for bad in (
        b"<VersioningConfiguration><Status>enabled</Status></VersioningConfiguration>",
        b"<VersioningConfiguration><Status>On</Status></VersioningConfiguration>",
        b"<VersioningConfiguration><MfaDelete>Yes</MfaDelete></VersioningConfiguration>",
        b"<VersioningConfiguration><Mode>x</Mode></VersioningConfiguration>",
        b"<Versioning><Status>Enabled</Status></Versioning>",
    ):
        assert _malformed(bad, parse).code == "MalformedXML"


def test_deep_nesting_is_refused():
    deep = b"<a>" * 33 + b"</a>" * 33
    err = _malformed(deep, s3xml.parse_xml)
    assert err.code == "MalformedXML" and "nested" in (err.detail or "")
    s3xml.parse_xml(b"<a>" * 32 + b"</a>" * 32)
    huge = b"<a>" * 200_000 + b"</a>" * 200_000
    assert _malformed(huge, lambda b: s3xml.parse_xml(b, max_size=len(b))).code == "MalformedXML"
