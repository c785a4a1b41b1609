"""Bucket operations: ListBuckets, CreateBucket, HeadBucket, GetBucketLocation,
DeleteBucket.
"""

from __future__ import annotations

from protocols.s3 import xml as s3xml
from protocols.s3.body import BodyReader
from protocols.s3.context import Ctx
from protocols.s3.errors import (
    S3Error,
)
from protocols.s3.names import (
    validate_bucket_name,
)
from protocols.s3.ops.acl import check_acl_headers
from protocols.s3.ops.common import (
    decode_token,
    encode_token,
    int_param,
)
from protocols.s3.request import Response, xml_response
from storage import errors as serr
from storage.teams import buckets_reachable

#: ListBuckets' largest page (S3's max-buckets bound).
MAX_LIST_BUCKETS = 10_000


async def list_buckets(ctx: Ctx) -> Response:
    """ListBuckets: the caller's buckets, by name, filtered by ``prefix`` and
    ``bucket-region``, in pages of ``max-buckets`` (AWS's 2024 parameters).

    The response's ContinuationToken, present only when more buckets
    follow, is what the next request passes as ``continuation-token``.
    """
    req = ctx.req
    prefix = req.query.get("prefix")
    region = req.query.get("bucket-region")
    max_buckets = int_param(req, "max-buckets", MAX_LIST_BUCKETS, 1, MAX_LIST_BUCKETS)
    after = decode_token(req.query.get("continuation-token"), "continuation-token")
    items = [
        s3xml.BucketInfo(b.name, b.created_at, b.region or ctx.region)
        # Owned and team buckets alike, under their own (global) names.
        for b in await buckets_reachable(ctx.node.core.db, ctx.requester().id)
        if (not prefix or b.name.startswith(prefix)) and (after is None or b.name > after)
        and (not region or (b.region or ctx.region) == region)
    ]
    token = None
    if len(items) > max_buckets:
        items = items[:max_buckets]
        token = encode_token(items[-1].name)
    return xml_response(s3xml.render_list_buckets(items, ctx.owner(), prefix=prefix,
                                          continuation_token=token))


async def create_bucket(ctx: Ctx) -> Response:
    """CreateBucket (LocationConstraint must be this cluster's region if given)."""
    req = ctx.req
    validate_bucket_name(req.bucket)
    check_acl_headers(req.headers, ctx)
    # `curl -X PUT` and some SDKs send no Content-Length for the empty body.
    reader = BodyReader(req, ctx.signing, require_length=False)
    body = await reader.read_all(s3xml.MAX_XML_BODY_SIZE)
    config = s3xml.parse_create_bucket(body)
    constraint = config.location_constraint
    # Tools send their own defaults ("US", "us-east-1"): accepted as "here".
    if constraint not in (None, "", ctx.region, "US", "us-east-1", "EU"):
        raise S3Error("InvalidLocationConstraint",
                      extra={"LocationConstraint": constraint})
    try:
        await ctx.buckets.create(ctx.requester().id, req.bucket, ctx.region)
    except serr.BucketAlreadyOwnedByYou:
        if not await legacy_recreate(ctx, req.bucket):
            raise
    ctx.node.forget_bucket(req.bucket)
    return Response(200, [("location", f"/{req.bucket}")])


async def legacy_recreate(ctx: Ctx, name: str) -> bool:
    """Whether re-creating a bucket the caller owns answers 200, not 409.

    AWS answers 409 BucketAlreadyOwnedByYou in every Region but US East
    (N. Virginia), where for legacy compatibility it answers 200 OK.  On
    AWS the endpoint's Region and the signing Region agree (it refuses a
    mismatch); here the endpoint is this node, whose Region is
    cluster.region, and scope Regions are accepted whatever they are --
    so the node's Region decides, and the bucket must be one of us-east-1.
    """
    if ctx.region != "us-east-1":
        return False
    bucket = await ctx.buckets.get(name)
    return (bucket.region or ctx.region) == "us-east-1"


async def head_bucket(ctx: Ctx) -> Response:
    """HeadBucket."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    return Response(200, [("x-amz-bucket-region", bucket.region or ctx.region)])


async def get_bucket_location(ctx: Ctx) -> Response:
    """GetBucketLocation."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    return xml_response(s3xml.render_location_constraint(bucket.region or ctx.region))


async def delete_bucket(ctx: Ctx) -> Response:
    """DeleteBucket (BucketNotEmpty while versions or uploads remain)."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket, fresh=True)
    await ctx.buckets.delete(bucket)
    ctx.node.forget_bucket(req.bucket)
    return Response(204)
