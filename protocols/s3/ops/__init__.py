"""The S3 operation handlers, one module per operation family, and the table
the app dispatches through (:data:`HANDLERS`, operation -> handler).

Every handler is ``async def handler(ctx: Ctx) -> Response``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from protocols.s3.context import Ctx
from protocols.s3.errors import method_not_allowed, not_implemented
from protocols.s3.ops import (
    acl,
    bucket,
    copy,
    cors,
    delete,
    get,
    multipart,
    post_object,
    put,
    tagging,
    versioning,
)
from protocols.s3.ops import list as listing
from protocols.s3.request import Response
from protocols.s3.router import NOT_IMPLEMENTED_OPS, UNSUPPORTED_SUBRESOURCES, Op

Handler = Callable[[Ctx], Awaitable[Response]]


async def unsupported(ctx: Ctx) -> Response:
    """501 NotImplemented naming the operation (a sub-resource served nowhere here)."""
    sub = next((name for name in ctx.req.query if name in UNSUPPORTED_SUBRESOURCES), "")
    raise not_implemented(f"{ctx.op.value} (the ?{sub} subresource)")


async def not_allowed(ctx: Ctx) -> Response:
    """405 MethodNotAllowed naming the method and the kind of resource addressed."""
    req = ctx.req
    kind = "OBJECT" if req.key else "BUCKET" if req.bucket else "SERVICE"
    raise method_not_allowed(req.method, kind)


HANDLERS: dict[Op, Handler] = {
    Op.LIST_BUCKETS: bucket.list_buckets,
    Op.CREATE_BUCKET: bucket.create_bucket,
    Op.DELETE_BUCKET: bucket.delete_bucket,
    Op.HEAD_BUCKET: bucket.head_bucket,
    Op.GET_BUCKET_LOCATION: bucket.get_bucket_location,
    Op.GET_BUCKET_VERSIONING: versioning.get_bucket_versioning,
    Op.PUT_BUCKET_VERSIONING: versioning.put_bucket_versioning,
    Op.GET_BUCKET_TAGGING: tagging.get_bucket_tagging,
    Op.PUT_BUCKET_TAGGING: tagging.put_bucket_tagging,
    Op.DELETE_BUCKET_TAGGING: tagging.delete_bucket_tagging,
    Op.GET_BUCKET_ACL: acl.get_bucket_acl,
    Op.PUT_BUCKET_ACL: acl.put_bucket_acl,
    Op.GET_BUCKET_CORS: cors.get_bucket_cors,
    Op.PUT_BUCKET_CORS: cors.put_bucket_cors,
    Op.DELETE_BUCKET_CORS: cors.delete_bucket_cors,
    Op.LIST_OBJECTS: listing.list_objects,
    Op.LIST_OBJECTS_V2: listing.list_objects_v2,
    Op.LIST_OBJECT_VERSIONS: listing.list_object_versions,
    Op.LIST_MULTIPART_UPLOADS: multipart.list_multipart_uploads,
    Op.GET_OBJECT: get.get_object,
    Op.HEAD_OBJECT: get.head_object,
    Op.PUT_OBJECT: put.put_object,
    Op.POST_OBJECT: post_object.post_object,
    Op.COPY_OBJECT: copy.copy_object,
    Op.DELETE_OBJECT: delete.delete_object,
    Op.DELETE_OBJECTS: delete.delete_objects,
    Op.GET_OBJECT_TAGGING: tagging.get_object_tagging,
    Op.PUT_OBJECT_TAGGING: tagging.put_object_tagging,
    Op.DELETE_OBJECT_TAGGING: tagging.delete_object_tagging,
    Op.GET_OBJECT_ACL: acl.get_object_acl,
    Op.PUT_OBJECT_ACL: acl.put_object_acl,
    Op.CREATE_MULTIPART_UPLOAD: multipart.create_multipart_upload,
    Op.UPLOAD_PART: multipart.upload_part,
    Op.UPLOAD_PART_COPY: multipart.upload_part_copy,
    Op.COMPLETE_MULTIPART_UPLOAD: multipart.complete_multipart_upload,
    Op.ABORT_MULTIPART_UPLOAD: multipart.abort_multipart_upload,
    Op.LIST_PARTS: multipart.list_parts,
    Op.PREFLIGHT: cors.cors_preflight,
    Op.METHOD_NOT_ALLOWED: not_allowed,
    **dict.fromkeys(NOT_IMPLEMENTED_OPS, unsupported),
}
# Every operation the router can resolve has a handler.
assert set(HANDLERS) == set(Op), set(Op) - set(HANDLERS)
