"""ACL operations: there is no shared access here, so an ACL is accepted
only when it keeps a bucket or object private to its owner (501 otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping

from protocols.s3 import xml as s3xml
from protocols.s3.context import Ctx
from protocols.s3.errors import (
    S3Error,
    access_denied,
    invalid_argument,
)
from protocols.s3.ops.common import (
    addressed_object,
    config_body,
    version_headers,
)
from protocols.s3.request import Response, xml_response

#: Canned ACLs S3 knows; only those that give no one but the owner any access
#: are honoured (every bucket and object here is private to its account).
CANNED_ACLS = frozenset({
    "private", "public-read", "public-read-write", "authenticated-read", "aws-exec-read",
    "bucket-owner-read", "bucket-owner-full-control", "log-delivery-write",
})

# The bucket owner is always the object owner, so these mean "private" too.
PRIVATE_CANNED_ACLS = frozenset({"private", "bucket-owner-read", "bucket-owner-full-control"})

GRANT_HEADERS = ("x-amz-grant-full-control", "x-amz-grant-read", "x-amz-grant-read-acp",
                 "x-amz-grant-write", "x-amz-grant-write-acp")

ONLY_PRIVATE = ("Only private access is supported: every bucket and object belongs to its "
                "account alone")


def is_owner(kind: str, grantee: str, ctx: Ctx) -> bool:
    """Whether grantee ``kind=grantee`` is the requester's own account."""
    account = ctx.requester()
    if kind.lower() == "id":
        return grantee == account.id
    return kind.lower() == "emailaddress" and grantee.lower() == account.email.lower()


def check_acl_headers(headers: Mapping[str, str], ctx: Ctx) -> None:
    """Accept ``x-amz-acl`` / ``x-amz-grant-*`` only when they keep things private.

    Anything that would give someone else access (or the owner less than
    FULL_CONTROL) is 501 NotImplemented: never silently ignored.
    """
    canned = headers.get("x-amz-acl")
    grants = [(h, headers[h]) for h in GRANT_HEADERS if h in headers]
    if canned is not None and grants:
        raise S3Error("InvalidRequest",
                      "Specifying both Canned ACLs and Header Grants is not allowed")
    if canned is not None:
        value = canned.strip()
        if value not in CANNED_ACLS:
            raise invalid_argument(f"Invalid canned ACL: {value}", "x-amz-acl", value)
        if value not in PRIVATE_CANNED_ACLS:
            raise S3Error("NotImplemented",
                          f"The canned ACL {value} is not implemented. {ONLY_PRIVATE}.")
    for header, value in grants:
        for grantee in value.split(","):
            kind, _, who = grantee.strip().partition("=")
            who = who.strip().strip('"')
            if header != "x-amz-grant-full-control" or not is_owner(
                    kind.strip(), who, ctx):
                raise S3Error("NotImplemented",
                              f"{header}: {grantee.strip()} is not implemented. "
                              f"{ONLY_PRIVATE}.")


def check_acl_policy(policy: s3xml.AccessControlPolicy, ctx: Ctx) -> None:
    """Accept an AccessControlPolicy only if it is "the owner has FULL_CONTROL"."""
    if policy.owner_id and policy.owner_id != ctx.requester().id:
        raise access_denied("The owner of a bucket or object cannot be changed.")
    if not policy.grants or not all(
        g.permission == "FULL_CONTROL" and is_owner(g.grantee_kind, g.grantee, ctx)
        for g in policy.grants
    ):
        raise S3Error("NotImplemented",
                      "An access control list other than the owner's FULL_CONTROL is not "
                      f"implemented. {ONLY_PRIVATE}.")


async def put_acl(ctx: Ctx) -> None:
    """Check a PutBucketAcl / PutObjectAcl request (headers or body, not both)."""
    req = ctx.req
    body = await config_body(ctx)
    has_headers = "x-amz-acl" in req.headers or any(h in req.headers for h in GRANT_HEADERS)
    if body.strip():
        if has_headers:
            raise S3Error("UnexpectedContent")
        check_acl_policy(s3xml.parse_access_control_policy(body), ctx)
    elif has_headers:
        check_acl_headers(req.headers, ctx)
    else:
        raise S3Error("MissingRequestBodyError")


async def get_bucket_acl(ctx: Ctx) -> Response:
    """GetBucketAcl: the owner with FULL_CONTROL (the only ACL there is here)."""
    req = ctx.req
    await ctx.bucket(req.bucket)
    return xml_response(s3xml.render_owner_only_acl(ctx.owner()))


async def put_bucket_acl(ctx: Ctx) -> Response:
    """PutBucketAcl: accepted when private, 501 when it would share the bucket."""
    req = ctx.req
    await ctx.bucket(req.bucket)
    await put_acl(ctx)
    return Response(200)


async def get_object_acl(ctx: Ctx) -> Response:
    """GetObjectAcl: the owner with FULL_CONTROL."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    info = await addressed_object(ctx, bucket)
    return xml_response(s3xml.render_owner_only_acl(ctx.owner()), 200,
                version_headers(bucket, info))


async def put_object_acl(ctx: Ctx) -> Response:
    """PutObjectAcl: accepted when private, 501 when it would share the object."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    await put_acl(ctx)
    info = await addressed_object(ctx, bucket)
    return Response(200, version_headers(bucket, info))
