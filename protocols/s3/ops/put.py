"""PutObject, streamed and verified before it becomes visible.
"""

from __future__ import annotations

from protocols.s3 import xml as s3xml
from protocols.s3.body import BodyReader
from protocols.s3.conditions import write_condition
from protocols.s3.context import Ctx
from protocols.s3.errors import (
    entity_too_large,
)
from protocols.s3.ops.acl import check_acl_headers
from protocols.s3.ops.common import (
    MAX_PUT_SIZE,
    check_room,
    content_md5,
    object_fields,
    precheck,
    tagging_header,
    written_version_headers,
)
from protocols.s3.request import Response


async def put_object(ctx: Ctx) -> Response:
    """PutObject, streamed and verified before it becomes visible."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    content_type, meta, stored = object_fields(req.headers)
    check_acl_headers(req.headers, ctx)
    tags = tagging_header(req.headers)
    reader = BodyReader(req, ctx.signing)
    if reader.size is not None and reader.size > MAX_PUT_SIZE:
        raise entity_too_large(reader.size, MAX_PUT_SIZE)
    await check_room(ctx, bucket, reader.size)
    condition = write_condition(req.headers)
    await precheck(ctx, bucket, req.key, condition)
    md5 = content_md5(req)
    info = await ctx.objects.put_object(
        bucket, req.key, reader, content_type=content_type, user_metadata=meta,
        headers=stored, checksums=reader.checksums, content_md5=md5,
        expected_size=reader.size, tags=tags, condition=condition,
        body_sha256=lambda: reader.verified_sha256,
    )
    headers = [("etag", s3xml.quote_etag(info.etag)), *written_version_headers(info)]
    headers += [(f"x-amz-checksum-{alg}", v) for alg, v in reader.checksums.items()]
    return Response(200, headers)
