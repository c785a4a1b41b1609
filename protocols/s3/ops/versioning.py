"""GetBucketVersioning / PutBucketVersioning.
"""

from __future__ import annotations

from protocols.s3 import xml as s3xml
from protocols.s3.body import BodyReader
from protocols.s3.context import Ctx
from protocols.s3.errors import (
    not_implemented,
)
from protocols.s3.request import Response, xml_response


async def put_bucket_versioning(ctx: Ctx) -> Response:
    """PutBucketVersioning (Enabled / Suspended)."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket, fresh=True)
    body = await BodyReader(req, ctx.signing).read_all(s3xml.MAX_XML_BODY_SIZE)
    config = s3xml.parse_versioning_configuration(body)
    if config.mfa_delete == "Enabled":
        raise not_implemented("MFA delete")
    if config.status is not None:
        await ctx.buckets.set_versioning(bucket, config.status)
    ctx.node.forget_bucket(req.bucket)
    return Response(200)


async def get_bucket_versioning(ctx: Ctx) -> Response:
    """GetBucketVersioning."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket, fresh=True)
    return xml_response(s3xml.render_versioning_configuration(bucket.versioning or None))
