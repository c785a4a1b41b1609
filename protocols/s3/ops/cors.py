"""Bucket CORS: the configuration operations, the unsigned OPTIONS preflight,
and the Access-Control-* headers of an ordinary request from a browser.
"""

from __future__ import annotations

import contextlib

from protocols.s3 import xml as s3xml
from protocols.s3.context import Ctx
from protocols.s3.errors import (
    S3Error,
)
from protocols.s3.ops.common import (
    config_body,
)
from protocols.s3.request import Response, xml_response
from storage import errors as serr
from storage.buckets import BucketInfo


def _wildcard_match(pattern: str, value: str) -> bool:
    head, star, tail = pattern.partition("*")
    if not star:
        return pattern == value
    return (len(value) >= len(head) + len(tail) and value.startswith(head)
            and value.endswith(tail))


def match_cors_rule(
    rules: list[s3xml.CORSRule], origin: str, method: str, headers: list[str] | None = None
) -> s3xml.CORSRule | None:
    """The first rule allowing ``origin``, ``method`` and every (lower-case) header."""
    for rule in rules:
        if method not in rule.methods:
            continue
        if not any(_wildcard_match(o, origin) for o in rule.origins):
            continue
        allowed = [h.lower() for h in rule.headers]
        if all(any(_wildcard_match(a, h) for a in allowed) for h in headers or ()):
            return rule
    return None


def cors_response_headers(
    rule: s3xml.CORSRule, origin: str, requested_headers: list[str] | None = None
) -> dict[str, str]:
    """The Access-Control-* headers S3 sends for a request a rule allows."""
    out = {"vary": "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"}
    if "*" in rule.origins:
        out["access-control-allow-origin"] = "*"
    else:
        out["access-control-allow-origin"] = origin
        out["access-control-allow-credentials"] = "true"
    out["access-control-allow-methods"] = ", ".join(rule.methods)
    if requested_headers:
        out["access-control-allow-headers"] = ", ".join(requested_headers)
    if rule.expose_headers:
        out["access-control-expose-headers"] = ", ".join(rule.expose_headers)
    if rule.max_age is not None:
        out["access-control-max-age"] = str(rule.max_age)
    return out


async def put_bucket_cors(ctx: Ctx) -> Response:
    """PutBucketCors replaces the bucket's CORS rules."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    body = await config_body(ctx, s3xml.MAX_CORS_BODY_SIZE)
    rules = s3xml.parse_cors_configuration(body)
    await ctx.buckets.set_cors(bucket, [r.as_dict() for r in rules])
    ctx.node.forget_cors(bucket.id)
    return Response(200)


async def get_bucket_cors(ctx: Ctx) -> Response:
    """GetBucketCors; 404 NoSuchCORSConfiguration when there is none."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    stored = await ctx.buckets.get_cors(bucket)
    if not stored:
        raise S3Error("NoSuchCORSConfiguration", extra={"BucketName": bucket.name})
    return xml_response(s3xml.render_cors_configuration(
        [s3xml.CORSRule.from_dict(r) for r in stored]))


async def delete_bucket_cors(ctx: Ctx) -> Response:
    """DeleteBucketCors."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    await ctx.buckets.set_cors(bucket, None)
    ctx.node.forget_cors(bucket.id)
    return Response(204)


async def cors_headers(ctx: Ctx, origin: str) -> dict[str, str]:
    """Access-Control-* headers for a request from ``origin``, if a rule allows it.

    Without a caller (a POST form that failed before its signature was
    checked) the rules apply as to an unsigned preflight.
    """
    req = ctx.req
    try:
        if ctx.account is None or ctx.signing is None:
            bucket = await ctx.node.cached_bucket(req.bucket)
        else:
            bucket = await ctx.bucket(req.bucket)
        rules = await ctx.node.cors_rules(bucket)
    except (S3Error, serr.StorageError):
        return {}  # no bucket of the caller's (any more): no CORS to apply
    rule = match_cors_rule(rules, origin, req.method)
    return cors_response_headers(rule, origin) if rule is not None else {}


async def cors_preflight(ctx: Ctx) -> Response:
    """A CORS preflight (unsigned OPTIONS), answered from the bucket's CORS rules."""
    req = ctx.req
    origin = req.headers.get("origin")
    if not origin:
        raise S3Error("BadRequest", "Insufficient information. Origin request header "
                      "needed.")
    method = req.headers.get("access-control-request-method")
    if method not in s3xml.CORS_METHODS:
        raise S3Error("BadRequest", f"Invalid Access-Control-Request-Method: {method}")
    bucket: BucketInfo | None = None
    if req.bucket:
        with contextlib.suppress(serr.NoSuchBucket):
            bucket = await ctx.node.cached_bucket(req.bucket)
    if bucket is None:
        # Unsigned: say no more than "not allowed" about other tenants' names.
        raise S3Error("CORSResponse")
    rules = await ctx.node.cors_rules(bucket)
    if not rules:
        raise S3Error("CORSResponse", "CORSResponse: CORS is not enabled for this bucket.")
    requested = [h.strip().lower() for h in
                 req.headers.get("access-control-request-headers", "").split(",")
                 if h.strip()]
    rule = match_cors_rule(rules, origin, method, requested)
    if rule is None:
        raise S3Error("CORSResponse")
    return Response(200, list(cors_response_headers(rule, origin, requested).items()))
