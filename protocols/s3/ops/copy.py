"""CopyObject, and the copy-source parsing UploadPartCopy shares.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from protocols.s3 import xml as s3xml
from protocols.s3.conditions import evaluate_conditions, write_condition
from protocols.s3.context import Ctx
from protocols.s3.errors import (
    S3Error,
    invalid_argument,
)
from protocols.s3.names import (
    refuse_nul,
    validate_object_key,
)
from protocols.s3.ops.acl import check_acl_headers
from protocols.s3.ops.common import (
    object_fields,
    tagging_header,
    written_version_headers,
)
from protocols.s3.request import Request, Response, xml_response
from storage.authz import Action
from storage.buckets import BucketInfo
from storage.objects import ObjectInfo


def _copy_source_text(encoded: str, header: str) -> str:
    """A percent-decoded part of ``x-amz-copy-source``; InvalidArgument if it is not
    UTF-8 or holds a NUL (which no bucket, key or version id can contain)."""
    try:
        text = unquote_to_bytes(encoded).decode("utf-8")
    except UnicodeDecodeError:
        raise invalid_argument("Copy Source must be URL-encoded UTF-8", "x-amz-copy-source",
                               header) from None
    refuse_nul(text, "x-amz-copy-source")
    return text


def copy_source(req: Request) -> tuple[str, str, str | None]:
    """``(bucket, key, version id)`` of the ``x-amz-copy-source`` header."""
    raw = req.headers["x-amz-copy-source"].strip()
    path, _, query = raw.partition("?")
    version_id = None
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == "versionId":
            version_id = _copy_source_text(value, raw) or None
        elif name:
            raise invalid_argument("Unsupported copy source parameter", "x-amz-copy-source",
                                   raw)
    path = _copy_source_text(path, raw).lstrip("/")
    bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise invalid_argument("Copy Source must mention the source bucket and key: "
                               "sourcebucket/sourcekey", "x-amz-copy-source", raw)
    validate_object_key(key)
    return bucket, key, version_id


async def copy_source_info(ctx: Ctx) -> tuple[BucketInfo, ObjectInfo]:
    """The copy source's bucket and version, its x-amz-copy-source-if-* conditions met."""
    req = ctx.req
    src_bucket_name, src_key, src_version = copy_source(req)
    src_bucket = await ctx.bucket(src_bucket_name, action=Action.READ)
    src = await ctx.objects.head_object(src_bucket, src_key, src_version)
    if src.is_delete_marker:
        raise S3Error("InvalidRequest", "The source of a copy request may not specifically "
                      "refer to a delete marker by version id.")
    h = req.headers
    evaluate_conditions(
        src, h.get("x-amz-copy-source-if-match"), h.get("x-amz-copy-source-if-none-match"),
        h.get("x-amz-copy-source-if-modified-since"),
        h.get("x-amz-copy-source-if-unmodified-since"), read=False,
    )
    return src_bucket, src


async def copy_object(ctx: Ctx) -> Response:
    """CopyObject (metadata directive COPY or REPLACE), chunks shared by reference."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    src_bucket, src = await copy_source_info(ctx)
    directive = req.headers.get("x-amz-metadata-directive", "COPY").strip().upper()
    if directive not in ("COPY", "REPLACE"):
        raise invalid_argument("Unknown metadata directive.", "x-amz-metadata-directive",
                               directive)
    tagging = req.headers.get("x-amz-tagging-directive", "COPY").strip().upper()
    if tagging not in ("COPY", "REPLACE"):
        raise invalid_argument("Unknown tagging directive.", "x-amz-tagging-directive",
                               tagging)
    check_acl_headers(req.headers, ctx)
    # REPLACE takes x-amz-tagging (no header: no tags); COPY keeps the source's.
    tags = (tagging_header(req.headers) or {}) if tagging == "REPLACE" else None
    _, _, explicit_version = copy_source(req)
    same = src_bucket.id == bucket.id and src.key == req.key and (
        explicit_version is None or src.is_latest)
    if same and directive == "COPY":
        raise S3Error(
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to itself "
            "without changing the object's metadata, storage class, website redirect "
            "location or encryption attributes.",
        )
    condition = write_condition(req.headers)
    if directive == "REPLACE":
        content_type, meta, stored = object_fields(req.headers)
        info = await ctx.objects.copy_object(
            src_bucket, src.key, bucket, req.key, version_id=src.version_id,
            content_type=content_type, user_metadata=meta, headers=stored, tags=tags,
            condition=condition,
        )
    else:
        info = await ctx.objects.copy_object(
            src_bucket, src.key, bucket, req.key, version_id=src.version_id, tags=tags,
            condition=condition,
        )
    headers = written_version_headers(info)
    if src_bucket.versioning:
        headers.append(("x-amz-copy-source-version-id", src.version_id))
    result = s3xml.render_copy_object_result(info.etag, info.last_modified)
    return xml_response(result, 200, headers)
