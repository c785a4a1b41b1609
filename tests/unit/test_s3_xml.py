"""S3 XML rendering: values, the generic renderer and error documents (read by boto3)."""

from __future__ import annotations

import datetime as dt
from urllib.parse import unquote, unquote_plus
from xml.etree import ElementTree

import pytest
from botocore.exceptions import ClientError

from protocols.s3 import errors
from protocols.s3 import xml as s3xml
from protocols.s3.errors import S3Error, signature_does_not_match
from protocols.s3.xml import (
    Elements,
)
from tests.unit.s3_xml_support import NS, T1, WEIRD_KEYS, boto_client

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
    client, _ = boto_client(s3xml.render_error(err, "REQ-1", "HOST-1"), status=status)
    with pytest.raises(ClientError) as info:
        client.list_objects_v2(Bucket="bucket")
    error = info.value.response["Error"]
    assert error["Code"] == err.code
    assert error["Message"] == err.message
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
