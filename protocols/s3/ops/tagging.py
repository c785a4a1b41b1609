"""Bucket and object tagging (Get/Put/Delete).
"""

from __future__ import annotations

from protocols.s3 import xml as s3xml
from protocols.s3.context import Ctx
from protocols.s3.errors import (
    S3Error,
)
from protocols.s3.ops.common import (
    addressed_object,
    config_body,
    version_headers,
)
from protocols.s3.request import Response, xml_response


async def put_bucket_tagging(ctx: Ctx) -> Response:
    """PutBucketTagging (up to 50 tags) replaces the bucket's tag set."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    body = await config_body(ctx)
    tags = s3xml.parse_tagging(body, max_tags=s3xml.MAX_BUCKET_TAGS)
    await ctx.buckets.set_tags(bucket, tags)
    return Response(204)


async def get_bucket_tagging(ctx: Ctx) -> Response:
    """GetBucketTagging; 404 NoSuchTagSet for a bucket without tags."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    tags = await ctx.buckets.get_tags(bucket)
    if not tags:
        raise S3Error("NoSuchTagSet", extra={"BucketName": bucket.name})
    return xml_response(s3xml.render_tagging(tags))


async def delete_bucket_tagging(ctx: Ctx) -> Response:
    """DeleteBucketTagging."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    await ctx.buckets.set_tags(bucket, None)
    return Response(204)


async def get_object_tagging(ctx: Ctx) -> Response:
    """GetObjectTagging (of the latest version or ``?versionId=``)."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    info = await addressed_object(ctx, bucket)
    return xml_response(s3xml.render_tagging(info.tags), 200, version_headers(bucket, info))


async def put_object_tagging(ctx: Ctx) -> Response:
    """PutObjectTagging replaces a version's tags (up to 10)."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    body = await config_body(ctx)
    tags = s3xml.parse_tagging(body, max_tags=s3xml.MAX_OBJECT_TAGS)
    info = await addressed_object(ctx, bucket)
    await ctx.objects.set_tags(bucket, req.key, info.version_id, tags)
    return Response(200, version_headers(bucket, info))


async def delete_object_tagging(ctx: Ctx) -> Response:
    """DeleteObjectTagging removes a version's tags."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    info = await addressed_object(ctx, bucket)
    await ctx.objects.set_tags(bucket, req.key, info.version_id, {})
    return Response(204, version_headers(bucket, info))
