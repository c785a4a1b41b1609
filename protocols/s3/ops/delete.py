"""DeleteObject and DeleteObjects.
"""

from __future__ import annotations

import hashlib

from protocols.s3 import xml as s3xml
from protocols.s3.body import BodyReader
from protocols.s3.conditions import delete_condition
from protocols.s3.context import Ctx
from protocols.s3.errors import (
    S3Error,
)
from protocols.s3.names import (
    validate_object_key,
)
from protocols.s3.ops.common import (
    content_md5,
)
from protocols.s3.request import Response, xml_response
from protocols.s3.storage_errors import from_storage_error
from storage import errors as serr


async def delete_object(ctx: Ctx) -> Response:
    """DeleteObject: a version, the null version, or a new delete marker."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    version_id = req.query.get("versionId") or None
    h = req.headers
    condition = delete_condition(h.get("if-match"), size=h.get("x-amz-if-match-size"),
                                 last_modified=h.get("x-amz-if-match-last-modified-time"))
    result = await ctx.objects.delete_object(bucket, req.key, version_id, condition=condition)
    headers: list[tuple[str, str]] = []
    if result.delete_marker:
        headers.append(("x-amz-delete-marker", "true"))
    if result.version_id is not None:
        headers.append(("x-amz-version-id", result.version_id))
    return Response(204, headers)


async def delete_objects(ctx: Ctx) -> Response:
    """DeleteObjects: up to 1000 keys, each reported as Deleted or Error."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    reader = BodyReader(req, ctx.signing)
    body = await reader.read_all(s3xml.MAX_DELETE_BODY_SIZE)
    md5 = content_md5(req)
    if md5 is not None and hashlib.md5(body).digest() != md5:
        raise S3Error("BadDigest")
    parsed = s3xml.parse_delete_objects(body)
    deleted: list[s3xml.DeletedObject] = []
    failed: list[s3xml.DeleteError] = []
    for obj in parsed.objects:
        try:
            validate_object_key(obj.key)
            # Each object's own <ETag> condition; a failed one is that key's
            # Error, the others are still deleted (as S3 does).
            condition = delete_condition(obj.etag, size=obj.size,
                                         last_modified=obj.last_modified_time)
            result = await ctx.objects.delete_object(
                bucket, obj.key, obj.version_id, condition=condition)
        except (S3Error, serr.StorageError) as exc:
            err = exc if isinstance(exc, S3Error) else from_storage_error(exc)
            failed.append(s3xml.DeleteError(obj.key, err.code, err.message, obj.version_id))
            continue
        if obj.version_id is not None:
            deleted.append(s3xml.DeletedObject(
                obj.key, obj.version_id, result.delete_marker,
                obj.version_id if result.delete_marker else None,
            ))
        else:
            deleted.append(s3xml.DeletedObject(
                obj.key, None, result.delete_marker,
                result.version_id if result.delete_marker else None,
            ))
    return xml_response(s3xml.render_delete_result(deleted, failed, quiet=parsed.quiet))
