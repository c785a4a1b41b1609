"""S3 XML: rendering of response documents and safe parsing of request documents.

Rendering turns plain dataclasses into S3's XML (namespace
``http://s3.amazonaws.com/doc/2006-03-01/``); one ``render_*`` function per response
type, all built on :func:`render_document`, a small generic renderer of nested
Python structures.

Parsing is hardened: bodies are capped in size, any DTD (``<!DOCTYPE``/``<!ENTITY``,
the vehicle of billion-laughs and external-entity attacks) is refused, elements are
accepted with or without a namespace, and anything unexpected is a MalformedXML
:class:`~protocols.s3.errors.S3Error`. It uses expat directly (stdlib) with handlers
that abort on declarations, so no extra dependency is needed.
"""

from __future__ import annotations

import datetime as dt
import xml.parsers.expat as expat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote
from xml.etree.ElementTree import Element, TreeBuilder

from protocols.s3.errors import S3Error, invalid_argument, invalid_encoding_type, malformed_xml

S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'

# Request-body caps. Configuration documents are tiny; DeleteObjects (1000 keys of up
# to 1024 bytes, escaped) and CompleteMultipartUpload (10000 parts with checksums)
# legitimately reach a few MiB.
MAX_XML_BODY_SIZE = 1 << 20
MAX_DELETE_BODY_SIZE = 4 << 20
MAX_COMPLETE_BODY_SIZE = 4 << 20

# S3's CORS configuration is at most 64 KB.
MAX_CORS_BODY_SIZE = 64 << 10

MAX_XML_DEPTH = 32
MAX_DELETE_OBJECTS = 1000
MAX_PART_NUMBER = 10000

# S3's tag limits (lengths in characters).
MAX_OBJECT_TAGS = 10
MAX_BUCKET_TAGS = 50
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256

MAX_CORS_RULES = 100
CORS_METHODS = ("GET", "PUT", "HEAD", "POST", "DELETE")


# ====================================================================================
# Values
# ====================================================================================


def format_timestamp(value: dt.datetime | float) -> str:
    """Format a time the way S3 XML does: ``2006-02-27T12:34:56.000Z`` (UTC, millis).

    ``value`` is an aware or naive (taken as UTC) datetime, or POSIX seconds.
    """
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    else:
        moment = dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
    m = moment.astimezone(dt.UTC)
    # By hand: strftime costs several times this, once per listed key.
    return (f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:"
            f"{m.second:02d}.{m.microsecond // 1000:03d}Z")


def quote_etag(etag: str) -> str:
    """Return ``etag`` wrapped in double quotes exactly once (``abc`` -> ``"abc"``)."""
    return '"' + etag.strip().strip('"') + '"'


def unquote_etag(etag: str) -> str:
    """Return ``etag`` without surrounding whitespace and double quotes."""
    return etag.strip().strip('"')


def parse_encoding_type(value: str | None) -> bool:
    """Validate a list request's ``encoding-type``; True when keys must be url-encoded.

    Only ``url`` exists; anything else is AWS's InvalidArgument.
    """
    if value is None:
        return False
    if value.lower() != "url":
        raise invalid_encoding_type(value)
    return True


def url_encode(value: str) -> str:
    """Percent-encode a key/prefix for ``encoding-type=url`` responses.

    Space becomes ``%20`` and ``+`` becomes ``%2B``, which every SDK decoder reads back
    correctly (botocore uses unquote_plus, Go uses QueryUnescape, JS decodeURIComponent).
    """
    return quote(value, safe="/")


# Text escaping: XML specials, plus characters XML 1.0 cannot carry raw. CR is escaped
# so that it survives the parser's newline normalisation.
_ESCAPES: dict[int, str] = {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;"}
_ESCAPES.update({c: f"&#x{c:X};" for c in range(0x20) if c not in (0x09, 0x0A)})


def escape_text(text: str) -> str:
    """Escape ``text`` for use as XML character data."""
    return text.translate(_ESCAPES)


# ====================================================================================
# Generic renderer
# ====================================================================================


class Elements(list):  # type: ignore[type-arg]
    """An ordered list of ``(name, value)`` children, for nodes whose children of
    different names must interleave (ListVersionsResult's Version/DeleteMarker)."""


class Raw(str):
    """Elements rendered already (by a renderer specialised for a hot list): emitted
    as they are, in place of the element they are given as."""


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return format_timestamp(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return escape_text(value)
    raise TypeError(f"cannot render {type(value).__name__} as XML text")


def _emit(out: list[str], name: str, value: Any) -> None:
    if value is None:
        return
    if type(value) is Raw:
        out.append(value)
        return
    if isinstance(value, Elements):
        out.append(f"<{name}>")
        for child_name, child in value:
            _emit(out, child_name, child)
        out.append(f"</{name}>")
    elif isinstance(value, Mapping):
        out.append(f"<{name}>")
        for child_name, child in value.items():
            _emit(out, child_name, child)
        out.append(f"</{name}>")
    elif isinstance(value, list | tuple):
        # A sequence value means the element repeats once per item.
        for item in value:
            _emit(out, name, item)
    else:
        out.append(f"<{name}>{_value_text(value)}</{name}>")


def render_document(
    root: str, content: Mapping[str, Any] | Elements | None, *, namespace: str | None = S3_NAMESPACE
) -> bytes:
    """Render ``content`` as the XML document ``<root>`` and return UTF-8 bytes.

    ``content`` maps child names to values: ``None`` is omitted, a ``str``/``int``/
    ``bool``/``datetime`` is a text element (datetimes in S3's timestamp format), a
    ``Mapping`` or :class:`Elements` is a nested element, and a ``list``/``tuple`` repeats
    the element once per item. ``content=None`` renders an empty root element.
    """
    ns = f' xmlns="{namespace}"' if namespace else ""
    out: list[str] = [XML_DECLARATION]
    if not content:
        out.append(f"<{root}{ns}/>")
    else:
        out.append(f"<{root}{ns}>")
        items = content if isinstance(content, Elements) else content.items()
        for name, value in items:
            _emit(out, name, value)
        out.append(f"</{root}>")
    return "".join(out).encode("utf-8")


# ====================================================================================
# Response models
# ====================================================================================


@dataclass(frozen=True, slots=True)
class Owner:
    """An object/bucket owner (``<Owner><ID/><DisplayName/></Owner>``)."""

    id: str
    display_name: str | None = None


@dataclass(frozen=True, slots=True)
class BucketInfo:
    """One bucket of ListBuckets."""

    name: str
    creation_date: dt.datetime
    region: str | None = None


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One ``<Contents>`` entry of ListObjects (v1 and v2)."""

    key: str
    last_modified: dt.datetime
    etag: str
    size: int
    storage_class: str = "STANDARD"
    owner: Owner | None = None
    checksum_algorithm: str | None = None
    checksum_type: str | None = None


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One ``<Version>`` or, with ``is_delete_marker``, ``<DeleteMarker>`` entry."""

    key: str
    version_id: str
    is_latest: bool
    last_modified: dt.datetime
    etag: str | None = None
    size: int = 0
    is_delete_marker: bool = False
    storage_class: str = "STANDARD"
    owner: Owner | None = None


@dataclass(frozen=True, slots=True)
class PartInfo:
    """One ``<Part>`` of ListParts. ``checksums`` maps algorithm (``CRC32``...) to base64."""

    part_number: int
    last_modified: dt.datetime
    etag: str
    size: int
    checksums: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UploadInfo:
    """One ``<Upload>`` of ListMultipartUploads."""

    key: str
    upload_id: str
    initiated: dt.datetime
    storage_class: str = "STANDARD"
    owner: Owner | None = None
    initiator: Owner | None = None
    checksum_algorithm: str | None = None


@dataclass(frozen=True, slots=True)
class DeletedObject:
    """A ``<Deleted>`` entry of DeleteResult."""

    key: str
    version_id: str | None = None
    delete_marker: bool = False
    delete_marker_version_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteError:
    """An ``<Error>`` entry of DeleteResult."""

    key: str
    code: str
    message: str
    version_id: str | None = None


def _owner(owner: Owner | None) -> dict[str, Any] | None:
    if owner is None:
        return None
    return {"ID": owner.id, "DisplayName": owner.display_name}


def _checksum_elements(checksums: Mapping[str, str] | None) -> dict[str, str]:
    # {"crc32": "..."} -> {"ChecksumCRC32": "..."}; S3 spells algorithms in capitals.
    return {f"Checksum{alg.upper()}": value for alg, value in (checksums or {}).items()}


class _Encoder:
    """Applies ``encoding-type=url`` to the fields S3 encodes, and nothing else."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, value: str | None) -> str | None:
        if value is None or not self.enabled:
            return value
        return url_encode(value)


def _common_prefixes(prefixes: Iterable[str], enc: _Encoder) -> list[dict[str, Any]]:
    return [{"Prefix": enc(p)} for p in prefixes]


# ====================================================================================
# Response renderers
# ====================================================================================


def render_error(err: S3Error, request_id: str, host_id: str = "") -> bytes:
    """Render the ``<Error>`` document of ``err`` (no namespace, as S3 sends it).

    Returns ``b""`` for errors that must not carry a body (304 Not Modified).
    """
    if not err.has_body:
        return b""
    content: dict[str, Any] = {"Code": err.code, "Message": err.message}
    if err.resource is not None:
        content["Resource"] = err.resource
    for name, value in err.extra.items():
        content.setdefault(name, value)
    content["RequestId"] = request_id
    content["HostId"] = host_id
    return render_document("Error", content, namespace=None)


def render_list_buckets(
    buckets: Sequence[BucketInfo],
    owner: Owner,
    *,
    continuation_token: str | None = None,
    prefix: str | None = None,
) -> bytes:
    """ListAllMyBucketsResult (ListBuckets)."""
    return render_document(
        "ListAllMyBucketsResult",
        {
            "Owner": _owner(owner),
            "Buckets": {
                "Bucket": [
                    {"Name": b.name, "CreationDate": b.creation_date, "BucketRegion": b.region}
                    for b in buckets
                ]
            },
            "ContinuationToken": continuation_token,
            "Prefix": prefix,
        },
    )


def _contents(objects: Iterable[ObjectInfo], enc: _Encoder, with_owner: bool) -> Raw:
    # The generic renderer's output, written directly: a page holds up to
    # 1,000 of these and the generic walk cost most of a listing's time.
    out = []
    for o in objects:
        owner = ""
        if with_owner and o.owner is not None:
            name = o.owner.display_name
            owner = (f"<Owner><ID>{escape_text(o.owner.id)}</ID>"
                     + (f"<DisplayName>{escape_text(name)}</DisplayName>" if name is not None
                        else "") + "</Owner>")
        checksum = ""
        if o.checksum_algorithm is not None:
            algorithm = escape_text(o.checksum_algorithm)
            checksum += f"<ChecksumAlgorithm>{algorithm}</ChecksumAlgorithm>"
        if o.checksum_type is not None:
            checksum += f"<ChecksumType>{escape_text(o.checksum_type)}</ChecksumType>"
        out.append(
            f"<Contents><Key>{escape_text(enc(o.key))}</Key>"
            f"<LastModified>{format_timestamp(o.last_modified)}</LastModified>"
            f"<ETag>{escape_text(quote_etag(o.etag))}</ETag>{checksum}<Size>{o.size}</Size>"
            f"{owner}<StorageClass>{escape_text(o.storage_class)}</StorageClass></Contents>"
        )
    return Raw("".join(out))


def render_list_objects_v1(
    bucket: str,
    *,
    contents: Sequence[ObjectInfo],
    common_prefixes: Sequence[str] = (),
    prefix: str | None = None,
    marker: str | None = None,
    next_marker: str | None = None,
    delimiter: str | None = None,
    max_keys: int = 1000,
    is_truncated: bool = False,
    encoding_type_url: bool = False,
) -> bytes:
    """ListBucketResult for ListObjects (v1). Owners are always listed in v1."""
    enc = _Encoder(encoding_type_url)
    return render_document(
        "ListBucketResult",
        {
            "Name": bucket,
            "Prefix": enc(prefix or ""),
            "Marker": enc(marker or ""),
            "NextMarker": enc(next_marker),
            "MaxKeys": max_keys,
            "Delimiter": enc(delimiter),
            "IsTruncated": is_truncated,
            "EncodingType": "url" if encoding_type_url else None,
            "Contents": _contents(contents, enc, with_owner=True),
            "CommonPrefixes": _common_prefixes(common_prefixes, enc),
        },
    )


def render_list_objects_v2(
    bucket: str,
    *,
    contents: Sequence[ObjectInfo],
    common_prefixes: Sequence[str] = (),
    prefix: str | None = None,
    delimiter: str | None = None,
    max_keys: int = 1000,
    is_truncated: bool = False,
    continuation_token: str | None = None,
    next_continuation_token: str | None = None,
    start_after: str | None = None,
    fetch_owner: bool = False,
    encoding_type_url: bool = False,
) -> bytes:
    """ListBucketResult for ListObjectsV2; ``KeyCount`` is computed from the entries."""
    enc = _Encoder(encoding_type_url)
    return render_document(
        "ListBucketResult",
        {
            "Name": bucket,
            "Prefix": enc(prefix or ""),
            "ContinuationToken": continuation_token,
            "NextContinuationToken": next_continuation_token,
            "KeyCount": len(contents) + len(common_prefixes),
            "MaxKeys": max_keys,
            "Delimiter": enc(delimiter),
            "IsTruncated": is_truncated,
            "StartAfter": enc(start_after),
            "EncodingType": "url" if encoding_type_url else None,
            "Contents": _contents(contents, enc, with_owner=fetch_owner),
            "CommonPrefixes": _common_prefixes(common_prefixes, enc),
        },
    )


def render_list_object_versions(
    bucket: str,
    *,
    versions: Sequence[VersionInfo],
    common_prefixes: Sequence[str] = (),
    prefix: str | None = None,
    key_marker: str | None = None,
    version_id_marker: str | None = None,
    next_key_marker: str | None = None,
    next_version_id_marker: str | None = None,
    delimiter: str | None = None,
    max_keys: int = 1000,
    is_truncated: bool = False,
    encoding_type_url: bool = False,
) -> bytes:
    """ListVersionsResult; versions and delete markers keep the order given."""
    enc = _Encoder(encoding_type_url)
    entries = Elements()
    for v in versions:
        if v.is_delete_marker:
            node: dict[str, Any] = {
                "Key": enc(v.key),
                "VersionId": v.version_id,
                "IsLatest": v.is_latest,
                "LastModified": v.last_modified,
                "Owner": _owner(v.owner),
            }
            entries.append(("DeleteMarker", node))
        else:
            node = {
                "Key": enc(v.key),
                "VersionId": v.version_id,
                "IsLatest": v.is_latest,
                "LastModified": v.last_modified,
                "ETag": quote_etag(v.etag or ""),
                "Size": v.size,
                "Owner": _owner(v.owner),
                "StorageClass": v.storage_class,
            }
            entries.append(("Version", node))
    content = Elements(
        [
            ("Name", bucket),
            ("Prefix", enc(prefix or "")),
            ("KeyMarker", enc(key_marker or "")),
            ("VersionIdMarker", version_id_marker or ""),
            ("NextKeyMarker", enc(next_key_marker)),
            ("NextVersionIdMarker", next_version_id_marker),
            ("MaxKeys", max_keys),
            ("Delimiter", enc(delimiter)),
            ("IsTruncated", is_truncated),
            ("EncodingType", "url" if encoding_type_url else None),
            *entries,
            ("CommonPrefixes", _common_prefixes(common_prefixes, enc)),
        ]
    )
    return render_document("ListVersionsResult", content)


def render_copy_object_result(
    etag: str, last_modified: dt.datetime, checksums: Mapping[str, str] | None = None
) -> bytes:
    """CopyObjectResult (CopyObject)."""
    return render_document(
        "CopyObjectResult",
        {"LastModified": last_modified, "ETag": quote_etag(etag), **_checksum_elements(checksums)},
    )


def render_copy_part_result(
    etag: str, last_modified: dt.datetime, checksums: Mapping[str, str] | None = None
) -> bytes:
    """CopyPartResult (UploadPartCopy)."""
    return render_document(
        "CopyPartResult",
        {"LastModified": last_modified, "ETag": quote_etag(etag), **_checksum_elements(checksums)},
    )


def render_initiate_multipart_upload(bucket: str, key: str, upload_id: str) -> bytes:
    """InitiateMultipartUploadResult (CreateMultipartUpload)."""
    return render_document(
        "InitiateMultipartUploadResult", {"Bucket": bucket, "Key": key, "UploadId": upload_id}
    )


def render_post_response(location: str, bucket: str, key: str, etag: str) -> bytes:
    """PostResponse (a POST Object form with ``success_action_status`` 201)."""
    return render_document(
        "PostResponse", {"Location": location, "Bucket": bucket, "Key": key, "ETag": etag}
    )


def render_complete_multipart_upload(
    location: str,
    bucket: str,
    key: str,
    etag: str,
    *,
    checksums: Mapping[str, str] | None = None,
    checksum_type: str | None = None,
) -> bytes:
    """CompleteMultipartUploadResult."""
    return render_document(
        "CompleteMultipartUploadResult",
        {
            "Location": location,
            "Bucket": bucket,
            "Key": key,
            "ETag": quote_etag(etag),
            **_checksum_elements(checksums),
            "ChecksumType": checksum_type,
        },
    )


def render_list_parts(
    bucket: str,
    key: str,
    upload_id: str,
    *,
    parts: Sequence[PartInfo],
    part_number_marker: int = 0,
    next_part_number_marker: int | None = None,
    max_parts: int = 1000,
    is_truncated: bool = False,
    owner: Owner | None = None,
    initiator: Owner | None = None,
    storage_class: str = "STANDARD",
    checksum_algorithm: str | None = None,
    checksum_type: str | None = None,
) -> bytes:
    """ListPartsResult."""
    return render_document(
        "ListPartsResult",
        {
            "Bucket": bucket,
            "Key": key,
            "UploadId": upload_id,
            "PartNumberMarker": part_number_marker,
            "NextPartNumberMarker": next_part_number_marker,
            "MaxParts": max_parts,
            "IsTruncated": is_truncated,
            "Part": [
                {
                    "PartNumber": p.part_number,
                    "LastModified": p.last_modified,
                    "ETag": quote_etag(p.etag),
                    "Size": p.size,
                    **_checksum_elements(p.checksums),
                }
                for p in parts
            ],
            "Initiator": _owner(initiator or owner),
            "Owner": _owner(owner),
            "StorageClass": storage_class,
            "ChecksumAlgorithm": checksum_algorithm,
            "ChecksumType": checksum_type,
        },
    )


def render_list_multipart_uploads(
    bucket: str,
    *,
    uploads: Sequence[UploadInfo],
    common_prefixes: Sequence[str] = (),
    prefix: str | None = None,
    delimiter: str | None = None,
    key_marker: str | None = None,
    upload_id_marker: str | None = None,
    next_key_marker: str | None = None,
    next_upload_id_marker: str | None = None,
    max_uploads: int = 1000,
    is_truncated: bool = False,
    encoding_type_url: bool = False,
) -> bytes:
    """ListMultipartUploadsResult."""
    enc = _Encoder(encoding_type_url)
    return render_document(
        "ListMultipartUploadsResult",
        {
            "Bucket": bucket,
            "KeyMarker": enc(key_marker or ""),
            "UploadIdMarker": upload_id_marker or "",
            "NextKeyMarker": enc(next_key_marker),
            "NextUploadIdMarker": next_upload_id_marker,
            "Prefix": enc(prefix),
            "Delimiter": enc(delimiter),
            "MaxUploads": max_uploads,
            "IsTruncated": is_truncated,
            "EncodingType": "url" if encoding_type_url else None,
            "Upload": [
                {
                    "Key": enc(u.key),
                    "UploadId": u.upload_id,
                    "Initiator": _owner(u.initiator or u.owner),
                    "Owner": _owner(u.owner),
                    "StorageClass": u.storage_class,
                    "Initiated": u.initiated,
                    "ChecksumAlgorithm": u.checksum_algorithm,
                }
                for u in uploads
            ],
            "CommonPrefixes": _common_prefixes(common_prefixes, enc),
        },
    )


def render_delete_result(
    deleted: Sequence[DeletedObject], errors: Sequence[DeleteError], *, quiet: bool = False
) -> bytes:
    """DeleteResult (DeleteObjects). In quiet mode only the errors are listed."""
    return render_document(
        "DeleteResult",
        {
            "Deleted": None
            if quiet
            else [
                {
                    "Key": d.key,
                    "VersionId": d.version_id,
                    "DeleteMarker": True if d.delete_marker else None,
                    "DeleteMarkerVersionId": d.delete_marker_version_id,
                }
                for d in deleted
            ],
            "Error": [
                {"Key": e.key, "VersionId": e.version_id, "Code": e.code, "Message": e.message}
                for e in errors
            ],
        },
    )


def render_location_constraint(region: str | None) -> bytes:
    """LocationConstraint (GetBucketLocation). us-east-1 is the empty element, as in S3."""
    value = None if region in (None, "", "us-east-1") else region
    ns = f' xmlns="{S3_NAMESPACE}"'
    if value is None:
        body = f"<LocationConstraint{ns}/>"
    else:
        body = f"<LocationConstraint{ns}>{escape_text(value)}</LocationConstraint>"
    return (XML_DECLARATION + body).encode("utf-8")


def render_versioning_configuration(status: str | None, mfa_delete: str | None = None) -> bytes:
    """VersioningConfiguration (GetBucketVersioning); never-versioned is the empty element."""
    return render_document("VersioningConfiguration", {"Status": status, "MfaDelete": mfa_delete})


def render_tagging(tags: Mapping[str, str]) -> bytes:
    """Tagging (GetObjectTagging, GetBucketTagging): the TagSet, possibly empty."""
    return render_document(
        "Tagging", {"TagSet": {"Tag": [{"Key": k, "Value": v} for k, v in sorted(tags.items())]}}
    )


def render_owner_only_acl(owner: Owner) -> bytes:
    """AccessControlPolicy (GetBucketAcl, GetObjectAcl): the owner with FULL_CONTROL.

    Written by hand because the Grantee carries an ``xsi:type`` attribute,
    which the generic renderer does not do.
    """
    ident = f"<ID>{escape_text(owner.id)}</ID>"
    if owner.display_name is not None:
        ident += f"<DisplayName>{escape_text(owner.display_name)}</DisplayName>"
    body = (
        f'<AccessControlPolicy xmlns="{S3_NAMESPACE}"><Owner>{ident}</Owner>'
        "<AccessControlList><Grant>"
        '<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:type="CanonicalUser">{ident}</Grantee>'
        "<Permission>FULL_CONTROL</Permission></Grant></AccessControlList>"
        "</AccessControlPolicy>"
    )
    return (XML_DECLARATION + body).encode("utf-8")


@dataclass(frozen=True, slots=True)
class CORSRule:
    """One CORSRule of a bucket's CORS configuration."""

    origins: tuple[str, ...]
    methods: tuple[str, ...]
    headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form the bucket stores."""
        return {"id": self.id, "origins": list(self.origins), "methods": list(self.methods),
                "headers": list(self.headers), "expose": list(self.expose_headers),
                "max_age": self.max_age}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CORSRule:
        """The rule :meth:`as_dict` stored."""
        return cls(
            origins=tuple(data.get("origins") or ()), methods=tuple(data.get("methods") or ()),
            headers=tuple(data.get("headers") or ()),
            expose_headers=tuple(data.get("expose") or ()), max_age=data.get("max_age"),
            id=data.get("id"),
        )


def render_cors_configuration(rules: Sequence[CORSRule]) -> bytes:
    """CORSConfiguration (GetBucketCors)."""
    return render_document("CORSConfiguration", {"CORSRule": [
        {"ID": r.id, "AllowedHeader": list(r.headers), "AllowedMethod": list(r.methods),
         "AllowedOrigin": list(r.origins), "ExposeHeader": list(r.expose_headers),
         "MaxAgeSeconds": r.max_age}
        for r in rules
    ]})


# ====================================================================================
# Safe parsing
# ====================================================================================


class _Forbidden(Exception):
    """Raised from expat handlers to abort on a DTD construct or excessive nesting."""


def _forbid(*_args: object) -> None:
    raise _Forbidden("DTD declarations are not allowed")


def _local(name: str) -> str:
    # expat reports "namespace}local" because of namespace_separator="}".
    return name.rpartition("}")[2]


def parse_xml(body: bytes, *, max_size: int = MAX_XML_BODY_SIZE) -> Element:
    """Parse an XML request body into an ElementTree element, safely.

    Tags are reduced to their local names (any namespace is accepted), attributes are
    dropped. Raises MaxMessageLengthExceeded over ``max_size`` bytes and MalformedXML
    for empty, ill-formed, DTD-bearing or over-nested (> 32 levels) documents.
    """
    if len(body) > max_size:
        raise S3Error("MaxMessageLengthExceeded", detail=f"XML body over {max_size} bytes")
    if not body.strip():
        raise malformed_xml("empty body")
    # Cheap early refusal; the expat handlers below are the real guard (they also see
    # declarations in other encodings such as UTF-16).
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise malformed_xml("DTD declarations are not allowed")

    builder = TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = _forbid
    parser.EntityDeclHandler = _forbid
    parser.UnparsedEntityDeclHandler = _forbid
    parser.NotationDeclHandler = _forbid
    parser.ExternalEntityRefHandler = _forbid
    depth = 0

    def start(name: str, _attrs: object) -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_XML_DEPTH:  # S3 documents are shallow; deep nesting is an attack
            raise _Forbidden(f"elements nested deeper than {MAX_XML_DEPTH}")
        builder.start(_local(name), {})

    def end(name: str) -> None:
        nonlocal depth
        depth -= 1
        builder.end(_local(name))

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(body, True)
    except _Forbidden as exc:
        raise malformed_xml(str(exc)) from None
    except (expat.ExpatError, ValueError) as exc:
        raise malformed_xml(str(exc)) from None
    return builder.close()


def _expect_root(root: Element, name: str) -> None:
    if root.tag != name:
        raise malformed_xml(f"root element is <{root.tag}>, expected <{name}>")


def _check_container(elem: Element) -> None:
    # A container holds elements only; stray text means the document is not ours.
    if elem.text and elem.text.strip():
        raise malformed_xml(f"unexpected text in <{elem.tag}>")
    for child in elem:
        if child.tail and child.tail.strip():
            raise malformed_xml(f"unexpected text after <{child.tag}>")


def _leaf_text(elem: Element) -> str:
    if len(elem):
        raise malformed_xml(f"<{elem.tag}> must not contain elements")
    return elem.text or ""


def _leaf_fields(elem: Element, allowed: Iterable[str], *, prefix_ok: str = "") -> dict[str, str]:
    """Map each child of ``elem`` to its text; unknown or repeated children are errors.

    Children whose name starts with ``prefix_ok`` (when given) are accepted too.
    """
    _check_container(elem)
    allowed_set = set(allowed)
    fields: dict[str, str] = {}
    for child in elem:
        if child.tag not in allowed_set and not (prefix_ok and child.tag.startswith(prefix_ok)):
            raise malformed_xml(f"unexpected <{child.tag}> in <{elem.tag}>")
        if child.tag in fields:
            raise malformed_xml(f"repeated <{child.tag}> in <{elem.tag}>")
        fields[child.tag] = _leaf_text(child)
    return fields


def _parse_bool(text: str, where: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise malformed_xml(f"<{where}> must be true or false")
    return value == "true"


@dataclass(frozen=True, slots=True)
class CreateBucketConfiguration:
    """The parsed body of CreateBucket (``None`` constraint when absent)."""

    location_constraint: str | None = None


def parse_create_bucket(
    body: bytes, *, max_size: int = MAX_XML_BODY_SIZE
) -> CreateBucketConfiguration:
    """Parse a CreateBucketConfiguration body; an empty body means no constraint."""
    if not body.strip():
        return CreateBucketConfiguration()
    root = parse_xml(body, max_size=max_size)
    _expect_root(root, "CreateBucketConfiguration")
    _check_container(root)
    location: str | None = None
    seen: set[str] = set()
    for child in root:
        if child.tag in seen:
            raise malformed_xml(f"repeated <{child.tag}>")
        seen.add(child.tag)
        if child.tag == "LocationConstraint":
            location = _leaf_text(child).strip() or None
        elif child.tag in ("Location", "Bucket", "Tags"):
            # Directory-bucket and tagging settings: well-formed, accepted, not used here.
            continue
        else:
            raise malformed_xml(f"unexpected <{child.tag}> in CreateBucketConfiguration")
    return CreateBucketConfiguration(location)


@dataclass(frozen=True, slots=True)
class ObjectIdentifier:
    """One ``<Object>`` of a DeleteObjects request. Conditional fields are kept raw."""

    key: str
    version_id: str | None = None
    etag: str | None = None
    last_modified_time: str | None = None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class DeleteObjectsRequest:
    """The parsed body of DeleteObjects."""

    objects: list[ObjectIdentifier]
    quiet: bool = False


def parse_delete_objects(
    body: bytes, *, max_size: int = MAX_DELETE_BODY_SIZE
) -> DeleteObjectsRequest:
    """Parse a DeleteObjects ``<Delete>`` body: 1..1000 objects and an optional Quiet.

    Keys are returned exactly as sent (whitespace included); validating them is the
    caller's business.
    """
    root = parse_xml(body, max_size=max_size)
    _expect_root(root, "Delete")
    _check_container(root)
    objects: list[ObjectIdentifier] = []
    quiet: bool | None = None
    for child in root:
        if child.tag == "Object":
            if len(objects) >= MAX_DELETE_OBJECTS:
                raise malformed_xml(f"more than {MAX_DELETE_OBJECTS} objects")
            fields = _leaf_fields(child, ("Key", "VersionId", "ETag", "LastModifiedTime", "Size"))
            if "Key" not in fields:
                raise malformed_xml("<Object> without <Key>")
            size: int | None = None
            if "Size" in fields:
                try:
                    size = int(fields["Size"].strip())
                except ValueError:
                    raise malformed_xml("<Size> must be an integer") from None
            objects.append(
                ObjectIdentifier(
                    key=fields["Key"],
                    version_id=fields.get("VersionId", "").strip() or None,
                    etag=fields.get("ETag"),
                    last_modified_time=fields.get("LastModifiedTime"),
                    size=size,
                )
            )
        elif child.tag == "Quiet":
            if quiet is not None:
                raise malformed_xml("repeated <Quiet>")
            quiet = _parse_bool(_leaf_text(child), "Quiet")
        else:
            raise malformed_xml(f"unexpected <{child.tag}> in <Delete>")
    if not objects:
        raise malformed_xml("no <Object> in <Delete>")
    return DeleteObjectsRequest(objects, bool(quiet))


@dataclass(frozen=True, slots=True)
class CompletedPart:
    """One ``<Part>`` of CompleteMultipartUpload; ``etag`` is unquoted, ``checksums``
    maps lower-case algorithm names (``crc32``...) to their base64 values."""

    part_number: int
    etag: str
    checksums: Mapping[str, str] = field(default_factory=dict)


def parse_complete_multipart(
    body: bytes, *, max_size: int = MAX_COMPLETE_BODY_SIZE
) -> list[CompletedPart]:
    """Parse a CompleteMultipartUpload body into its parts, in document order.

    Every part needs a PartNumber (1..10000) and an ETag. Ordering and duplicates are
    left to the caller (they are InvalidPartOrder/InvalidPart, not MalformedXML).
    """
    root = parse_xml(body, max_size=max_size)
    _expect_root(root, "CompleteMultipartUpload")
    _check_container(root)
    parts: list[CompletedPart] = []
    for child in root:
        if child.tag != "Part":
            raise malformed_xml(f"unexpected <{child.tag}> in <CompleteMultipartUpload>")
        if len(parts) >= MAX_PART_NUMBER:
            raise malformed_xml(f"more than {MAX_PART_NUMBER} parts")
        fields = _leaf_fields(child, ("PartNumber", "ETag"), prefix_ok="Checksum")
        if "PartNumber" not in fields or "ETag" not in fields:
            raise malformed_xml("<Part> needs <PartNumber> and <ETag>")
        raw_number = fields["PartNumber"].strip()
        if not raw_number.isascii() or not raw_number.isdigit():
            raise malformed_xml("<PartNumber> must be an integer")
        number = int(raw_number)
        if not 1 <= number <= MAX_PART_NUMBER:
            raise invalid_argument(
                "Part number must be an integer between 1 and 10000, inclusive",
                "partNumber",
                raw_number,
            )
        etag = unquote_etag(fields["ETag"])
        if not etag:
            raise malformed_xml("empty <ETag>")
        checksums = {
            name[len("Checksum") :].lower(): value.strip()
            for name, value in fields.items()
            if name.startswith("Checksum") and name != "ChecksumType"
        }
        parts.append(CompletedPart(number, etag, checksums))
    if not parts:
        raise malformed_xml("no <Part> in <CompleteMultipartUpload>")
    return parts


@dataclass(frozen=True, slots=True)
class VersioningConfiguration:
    """The parsed body of PutBucketVersioning; ``None`` fields were absent."""

    status: str | None = None
    mfa_delete: str | None = None


def parse_versioning_configuration(
    body: bytes, *, max_size: int = MAX_XML_BODY_SIZE
) -> VersioningConfiguration:
    """Parse a VersioningConfiguration body (Status: Enabled|Suspended)."""
    root = parse_xml(body, max_size=max_size)
    _expect_root(root, "VersioningConfiguration")
    fields = _leaf_fields(root, ("Status", "MfaDelete"))
    status = fields["Status"].strip() if "Status" in fields else None
    mfa = fields["MfaDelete"].strip() if "MfaDelete" in fields else None
    if status is not None and status not in ("Enabled", "Suspended"):
        raise malformed_xml("<Status> must be Enabled or Suspended")
    if mfa is not None and mfa not in ("Enabled", "Disabled"):
        raise malformed_xml("<MfaDelete> must be Enabled or Disabled")
    return VersioningConfiguration(status, mfa)


def _invalid_tag(message: str) -> S3Error:
    return S3Error("InvalidTag", message)


def validate_tags(pairs: Sequence[tuple[str, str]], *, max_tags: int) -> dict[str, str]:
    """Apply S3's tag rules to ``(key, value)`` pairs; the tags as a dict.

    At most ``max_tags`` tags, keys of 1..128 characters not starting with
    ``aws:``, values of 0..256 characters, no key twice; else 400 InvalidTag.
    """
    if len(pairs) > max_tags:
        raise _invalid_tag(f"Object tags cannot be greater than {max_tags}"
                           if max_tags == MAX_OBJECT_TAGS
                           else f"Bucket tag count cannot be greater than {max_tags}")
    tags: dict[str, str] = {}
    for key, value in pairs:
        if not key:
            raise _invalid_tag("The TagKey you have provided is invalid")
        if len(key) > MAX_TAG_KEY_LENGTH:
            raise _invalid_tag(f"The TagKey you have provided is too long, max "
                               f"{MAX_TAG_KEY_LENGTH}")
        if len(value) > MAX_TAG_VALUE_LENGTH:
            raise _invalid_tag(f"The TagValue you have provided is too long, max "
                               f"{MAX_TAG_VALUE_LENGTH}")
        if key.lower().startswith("aws:"):
            raise _invalid_tag("Your TagKey cannot be prefixed with aws:")
        # Only x-amz-tagging can carry a NUL (XML cannot); the database cannot store one.
        if "\x00" in key:
            raise _invalid_tag("The TagKey you have provided is invalid")
        if "\x00" in value:
            raise _invalid_tag("The TagValue you have provided is invalid")
        if key in tags:
            raise _invalid_tag("Cannot provide multiple Tags with the same key")
        tags[key] = value
    return tags


def parse_tagging(
    body: bytes, *, max_tags: int = MAX_OBJECT_TAGS, max_size: int = MAX_XML_BODY_SIZE
) -> dict[str, str]:
    """Parse a ``<Tagging><TagSet><Tag><Key/><Value/></Tag>...`` body into validated tags."""
    root = parse_xml(body, max_size=max_size)
    _expect_root(root, "Tagging")
    _check_container(root)
    if len(root) != 1 or root[0].tag != "TagSet":
        raise malformed_xml("<Tagging> must hold exactly one <TagSet>")
    tag_set = root[0]
    _check_container(tag_set)
    pairs: list[tuple[str, str]] = []
    for child in tag_set:
        if child.tag != "Tag":
            raise malformed_xml(f"unexpected <{child.tag}> in <TagSet>")
        if len(pairs) > MAX_BUCKET_TAGS:
            # Bounded before validation so a huge TagSet costs nothing more.
            break
        fields = _leaf_fields(child, ("Key", "Value"))
        if "Key" not in fields or "Value" not in fields:
            raise malformed_xml("<Tag> needs <Key> and <Value>")
        pairs.append((fields["Key"], fields["Value"]))
    return validate_tags(pairs, max_tags=max_tags)


@dataclass(frozen=True, slots=True)
class Grant:
    """One ``<Grant>`` of an AccessControlPolicy: the grantee's kind and identity."""

    grantee_kind: str  # "ID", "EmailAddress" or "URI"
    grantee: str
    permission: str


@dataclass(frozen=True, slots=True)
class AccessControlPolicy:
    """The parsed body of PutBucketAcl / PutObjectAcl."""

    owner_id: str | None
    grants: list[Grant]


_PERMISSIONS = ("FULL_CONTROL", "WRITE", "WRITE_ACP", "READ", "READ_ACP")


def _malformed_acl(detail: str) -> S3Error:
    return S3Error("MalformedACLError", detail=detail)


def parse_access_control_policy(
    body: bytes, *, max_size: int = MAX_XML_BODY_SIZE
) -> AccessControlPolicy:
    """Parse an AccessControlPolicy; MalformedACLError if it is not one.

    The grantee's ``xsi:type`` attribute is not kept (the parser drops
    attributes): its kind is told by which identifying element it holds.
    """
    try:
        root = parse_xml(body, max_size=max_size)
    except S3Error as exc:
        if exc.code != "MalformedXML":
            raise
        raise _malformed_acl(exc.detail or "not XML") from None
    if root.tag != "AccessControlPolicy":
        raise _malformed_acl(f"root element is <{root.tag}>")
    owner_id: str | None = None
    grants: list[Grant] = []
    try:
        _check_container(root)
        for child in root:
            if child.tag == "Owner":
                owner_id = _leaf_fields(child, ("ID", "DisplayName")).get("ID", "").strip()
            elif child.tag == "AccessControlList":
                _check_container(child)
                for grant in child:
                    if grant.tag != "Grant" or len(grants) >= 100:
                        raise malformed_xml("bad <AccessControlList>")
                    grants.append(_parse_grant(grant))
            else:
                raise malformed_xml(f"unexpected <{child.tag}>")
    except S3Error as exc:
        if exc.code != "MalformedXML":
            raise
        raise _malformed_acl(exc.detail or "") from None
    return AccessControlPolicy(owner_id, grants)


def _parse_grant(grant: Element) -> Grant:
    _check_container(grant)
    grantee: Element | None = None
    permission: str | None = None
    for child in grant:
        if child.tag == "Grantee" and grantee is None:
            grantee = child
        elif child.tag == "Permission" and permission is None:
            permission = _leaf_text(child).strip()
        else:
            raise malformed_xml(f"unexpected <{child.tag}> in <Grant>")
    if grantee is None or permission not in _PERMISSIONS:
        raise malformed_xml("<Grant> needs a <Grantee> and a valid <Permission>")
    fields = _leaf_fields(grantee, ("ID", "DisplayName", "EmailAddress", "URI"))
    for kind in ("ID", "EmailAddress", "URI"):
        if kind in fields:
            return Grant(kind, fields[kind].strip(), permission)
    raise malformed_xml("<Grantee> without ID, EmailAddress or URI")


def _one_wildcard(kind: str, value: str) -> str:
    if value.count("*") > 1:
        raise S3Error("InvalidRequest", f'{kind} "{value}" can not have more than one wildcard.')
    return value


def parse_cors_configuration(
    body: bytes, *, max_size: int = MAX_CORS_BODY_SIZE
) -> list[CORSRule]:
    """Parse a CORSConfiguration: 1..100 rules, each with methods and origins.

    A method S3 does not know, or a second ``*`` in an origin or header, is
    S3's 400 InvalidRequest; anything structurally wrong is MalformedXML.
    """
    root = parse_xml(body, max_size=max_size)
    _expect_root(root, "CORSConfiguration")
    _check_container(root)
    rules: list[CORSRule] = []
    for child in root:
        if child.tag != "CORSRule":
            raise malformed_xml(f"unexpected <{child.tag}> in <CORSConfiguration>")
        if len(rules) >= MAX_CORS_RULES:
            raise malformed_xml(f"more than {MAX_CORS_RULES} rules")
        rules.append(_parse_cors_rule(child))
    if not rules:
        raise malformed_xml("no <CORSRule>")
    return rules


def _parse_cors_rule(elem: Element) -> CORSRule:
    _check_container(elem)
    lists: dict[str, list[str]] = {
        "AllowedOrigin": [], "AllowedMethod": [], "AllowedHeader": [], "ExposeHeader": []}
    single: dict[str, str] = {}
    for child in elem:
        text = _leaf_text(child).strip()
        if child.tag in lists:
            lists[child.tag].append(text)
        elif child.tag in ("ID", "MaxAgeSeconds") and child.tag not in single:
            single[child.tag] = text
        else:
            raise malformed_xml(f"unexpected <{child.tag}> in <CORSRule>")
    if not lists["AllowedOrigin"] or not lists["AllowedMethod"]:
        raise malformed_xml("<CORSRule> needs <AllowedOrigin> and <AllowedMethod>")
    for method in lists["AllowedMethod"]:
        if method not in CORS_METHODS:
            raise S3Error("InvalidRequest", "Found unsupported HTTP method in CORS config. "
                          f"Unsupported method is {method}")
    max_age: int | None = None
    if "MaxAgeSeconds" in single:
        raw = single["MaxAgeSeconds"]
        if not raw.isascii() or not raw.isdigit():
            raise malformed_xml("<MaxAgeSeconds> must be a non-negative integer")
        max_age = int(raw)
    rule_id = single.get("ID") or None
    if rule_id is not None and len(rule_id) > 255:
        raise S3Error("InvalidRequest", "The ID of a CORS rule can be at most 255 characters.")
    return CORSRule(
        origins=tuple(_one_wildcard("AllowedOrigin", o) for o in lists["AllowedOrigin"]),
        methods=tuple(dict.fromkeys(lists["AllowedMethod"])),
        headers=tuple(_one_wildcard("AllowedHeader", h) for h in lists["AllowedHeader"]),
        expose_headers=tuple(lists["ExposeHeader"]), max_age=max_age, id=rule_id,
    )
