"""S3 XML rendering: one ``render_*`` function per response document, all built
on :func:`render_document`, a small generic renderer of nested Python structures.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from protocols.s3.errors import S3Error
from protocols.s3.xml.common import (
    S3_NAMESPACE,
    XML_DECLARATION,
    escape_text,
    format_timestamp,
    quote_etag,
)
from protocols.s3.xml.model import (
    BucketInfo,
    CORSRule,
    DeletedObject,
    DeleteError,
    ObjectInfo,
    Owner,
    PartInfo,
    UploadInfo,
    VersionInfo,
    _checksum_elements,
    _common_prefixes,
    _Encoder,
    _owner,
)

# ====================================================================================
# Generic renderer
# ====================================================================================


class Elements(list[tuple[str, Any]]):
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


def render_cors_configuration(rules: Sequence[CORSRule]) -> bytes:
    """CORSConfiguration (GetBucketCors)."""
    return render_document("CORSConfiguration", {"CORSRule": [
        {"ID": r.id, "AllowedHeader": list(r.headers), "AllowedMethod": list(r.methods),
         "AllowedOrigin": list(r.origins), "ExposeHeader": list(r.expose_headers),
         "MaxAgeSeconds": r.max_age}
        for r in rules
    ]})


