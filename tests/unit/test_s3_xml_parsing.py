"""S3 XML request parsing: hardened against DTDs, oversize and malformed documents."""

from __future__ import annotations

import pytest

from protocols.s3 import xml as s3xml
from protocols.s3.errors import S3Error

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
