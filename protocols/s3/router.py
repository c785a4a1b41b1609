"""Which S3 operation a request is, decided once from its method, address and query.

Sans-I/O: :func:`split_address` turns the Host header and path into bucket
and key (path style or virtual-host style), :func:`resolve` names the
operation (:class:`Op`, whose value is the AWS API name).  The app dispatches
on the result through a table, the rate limiter takes its class from it
(:func:`rate_class`) and the request trace records its name.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from storage.authz import Action


class Op(enum.Enum):
    """An S3 operation; the value is its name in the AWS API reference."""

    # Service
    LIST_BUCKETS = "ListBuckets"
    # Buckets
    CREATE_BUCKET = "CreateBucket"
    DELETE_BUCKET = "DeleteBucket"
    HEAD_BUCKET = "HeadBucket"
    GET_BUCKET_LOCATION = "GetBucketLocation"
    GET_BUCKET_VERSIONING = "GetBucketVersioning"
    PUT_BUCKET_VERSIONING = "PutBucketVersioning"
    GET_BUCKET_TAGGING = "GetBucketTagging"
    PUT_BUCKET_TAGGING = "PutBucketTagging"
    DELETE_BUCKET_TAGGING = "DeleteBucketTagging"
    GET_BUCKET_ACL = "GetBucketAcl"
    PUT_BUCKET_ACL = "PutBucketAcl"
    GET_BUCKET_CORS = "GetBucketCors"
    PUT_BUCKET_CORS = "PutBucketCors"
    DELETE_BUCKET_CORS = "DeleteBucketCors"
    # Listings
    LIST_OBJECTS = "ListObjects"
    LIST_OBJECTS_V2 = "ListObjectsV2"
    LIST_OBJECT_VERSIONS = "ListObjectVersions"
    LIST_MULTIPART_UPLOADS = "ListMultipartUploads"
    # Objects
    GET_OBJECT = "GetObject"
    HEAD_OBJECT = "HeadObject"
    PUT_OBJECT = "PutObject"
    POST_OBJECT = "PostObject"  # a browser form upload
    COPY_OBJECT = "CopyObject"
    DELETE_OBJECT = "DeleteObject"
    DELETE_OBJECTS = "DeleteObjects"
    GET_OBJECT_TAGGING = "GetObjectTagging"
    PUT_OBJECT_TAGGING = "PutObjectTagging"
    DELETE_OBJECT_TAGGING = "DeleteObjectTagging"
    GET_OBJECT_ACL = "GetObjectAcl"
    PUT_OBJECT_ACL = "PutObjectAcl"
    # Multipart uploads
    CREATE_MULTIPART_UPLOAD = "CreateMultipartUpload"
    UPLOAD_PART = "UploadPart"
    UPLOAD_PART_COPY = "UploadPartCopy"
    COMPLETE_MULTIPART_UPLOAD = "CompleteMultipartUpload"
    ABORT_MULTIPART_UPLOAD = "AbortMultipartUpload"
    LIST_PARTS = "ListParts"
    # CORS preflight (an unsigned OPTIONS)
    PREFLIGHT = "PreflightRequest"
    # Answered 405: the method means nothing for the addressed resource.
    METHOD_NOT_ALLOWED = "MethodNotAllowed"
    # Sub-resources answered 501 NotImplemented.
    GET_BUCKET_ACCELERATE = "GetBucketAccelerateConfiguration"
    PUT_BUCKET_ACCELERATE = "PutBucketAccelerateConfiguration"
    GET_BUCKET_ANALYTICS = "GetBucketAnalyticsConfiguration"
    PUT_BUCKET_ANALYTICS = "PutBucketAnalyticsConfiguration"
    DELETE_BUCKET_ANALYTICS = "DeleteBucketAnalyticsConfiguration"
    GET_OBJECT_ATTRIBUTES = "GetObjectAttributes"
    GET_BUCKET_ENCRYPTION = "GetBucketEncryption"
    PUT_BUCKET_ENCRYPTION = "PutBucketEncryption"
    DELETE_BUCKET_ENCRYPTION = "DeleteBucketEncryption"
    GET_BUCKET_INTELLIGENT_TIERING = "GetBucketIntelligentTieringConfiguration"
    PUT_BUCKET_INTELLIGENT_TIERING = "PutBucketIntelligentTieringConfiguration"
    DELETE_BUCKET_INTELLIGENT_TIERING = "DeleteBucketIntelligentTieringConfiguration"
    GET_BUCKET_INVENTORY = "GetBucketInventoryConfiguration"
    PUT_BUCKET_INVENTORY = "PutBucketInventoryConfiguration"
    DELETE_BUCKET_INVENTORY = "DeleteBucketInventoryConfiguration"
    GET_OBJECT_LEGAL_HOLD = "GetObjectLegalHold"
    PUT_OBJECT_LEGAL_HOLD = "PutObjectLegalHold"
    GET_BUCKET_LIFECYCLE = "GetBucketLifecycleConfiguration"
    PUT_BUCKET_LIFECYCLE = "PutBucketLifecycleConfiguration"
    DELETE_BUCKET_LIFECYCLE = "DeleteBucketLifecycle"
    GET_BUCKET_LOGGING = "GetBucketLogging"
    PUT_BUCKET_LOGGING = "PutBucketLogging"
    GET_BUCKET_METADATA_TABLE = "GetBucketMetadataTableConfiguration"
    CREATE_BUCKET_METADATA_TABLE = "CreateBucketMetadataTableConfiguration"
    DELETE_BUCKET_METADATA_TABLE = "DeleteBucketMetadataTableConfiguration"
    GET_BUCKET_METRICS = "GetBucketMetricsConfiguration"
    PUT_BUCKET_METRICS = "PutBucketMetricsConfiguration"
    DELETE_BUCKET_METRICS = "DeleteBucketMetricsConfiguration"
    GET_BUCKET_NOTIFICATION = "GetBucketNotificationConfiguration"
    PUT_BUCKET_NOTIFICATION = "PutBucketNotificationConfiguration"
    GET_OBJECT_LOCK_CONFIGURATION = "GetObjectLockConfiguration"
    PUT_OBJECT_LOCK_CONFIGURATION = "PutObjectLockConfiguration"
    GET_BUCKET_OWNERSHIP_CONTROLS = "GetBucketOwnershipControls"
    PUT_BUCKET_OWNERSHIP_CONTROLS = "PutBucketOwnershipControls"
    DELETE_BUCKET_OWNERSHIP_CONTROLS = "DeleteBucketOwnershipControls"
    GET_BUCKET_POLICY = "GetBucketPolicy"
    PUT_BUCKET_POLICY = "PutBucketPolicy"
    DELETE_BUCKET_POLICY = "DeleteBucketPolicy"
    GET_BUCKET_POLICY_STATUS = "GetBucketPolicyStatus"
    GET_PUBLIC_ACCESS_BLOCK = "GetPublicAccessBlock"
    PUT_PUBLIC_ACCESS_BLOCK = "PutPublicAccessBlock"
    DELETE_PUBLIC_ACCESS_BLOCK = "DeletePublicAccessBlock"
    GET_BUCKET_REPLICATION = "GetBucketReplication"
    PUT_BUCKET_REPLICATION = "PutBucketReplication"
    DELETE_BUCKET_REPLICATION = "DeleteBucketReplication"
    GET_BUCKET_REQUEST_PAYMENT = "GetBucketRequestPayment"
    PUT_BUCKET_REQUEST_PAYMENT = "PutBucketRequestPayment"
    RESTORE_OBJECT = "RestoreObject"
    GET_OBJECT_RETENTION = "GetObjectRetention"
    PUT_OBJECT_RETENTION = "PutObjectRetention"
    SELECT_OBJECT_CONTENT = "SelectObjectContent"
    GET_OBJECT_TORRENT = "GetObjectTorrent"
    GET_BUCKET_WEBSITE = "GetBucketWebsite"
    PUT_BUCKET_WEBSITE = "PutBucketWebsite"
    DELETE_BUCKET_WEBSITE = "DeleteBucketWebsite"
    RENAME_OBJECT = "RenameObject"
    CREATE_SESSION = "CreateSession"
    # An unsupported sub-resource with a method S3 has no operation for.
    UNSUPPORTED_SUBRESOURCE = "UnsupportedSubresource"


def _unsupported() -> dict[str, dict[str, Op]]:
    """Sub-resource -> method -> the (501) operation it asks for."""
    crud = {
        "accelerate": "BUCKET_ACCELERATE", "analytics": "BUCKET_ANALYTICS",
        "encryption": "BUCKET_ENCRYPTION", "intelligent-tiering": "BUCKET_INTELLIGENT_TIERING",
        "inventory": "BUCKET_INVENTORY", "legal-hold": "OBJECT_LEGAL_HOLD",
        "lifecycle": "BUCKET_LIFECYCLE", "logging": "BUCKET_LOGGING",
        "metrics": "BUCKET_METRICS", "notification": "BUCKET_NOTIFICATION",
        "object-lock": "OBJECT_LOCK_CONFIGURATION",
        "ownershipControls": "BUCKET_OWNERSHIP_CONTROLS", "policy": "BUCKET_POLICY",
        "publicAccessBlock": "PUBLIC_ACCESS_BLOCK", "replication": "BUCKET_REPLICATION",
        "requestPayment": "BUCKET_REQUEST_PAYMENT", "retention": "OBJECT_RETENTION",
        "website": "BUCKET_WEBSITE",
    }
    table: dict[str, dict[str, Op]] = {}
    for sub, stem in crud.items():
        table[sub] = {verb: Op[f"{prefix}_{stem}"]
                      for verb, prefix in (("GET", "GET"), ("HEAD", "GET"), ("PUT", "PUT"),
                                           ("DELETE", "DELETE"))
                      if f"{prefix}_{stem}" in Op.__members__}
    table["metadataTable"] = {"GET": Op.GET_BUCKET_METADATA_TABLE,
                              "POST": Op.CREATE_BUCKET_METADATA_TABLE,
                              "DELETE": Op.DELETE_BUCKET_METADATA_TABLE}
    table["attributes"] = {"GET": Op.GET_OBJECT_ATTRIBUTES}
    table["policyStatus"] = {"GET": Op.GET_BUCKET_POLICY_STATUS}
    table["restore"] = {"POST": Op.RESTORE_OBJECT}
    table["select"] = {"POST": Op.SELECT_OBJECT_CONTENT}
    table["torrent"] = {"GET": Op.GET_OBJECT_TORRENT}
    table["renameObject"] = {"PUT": Op.RENAME_OBJECT}
    table["session"] = {"GET": Op.CREATE_SESSION}
    return table


#: Sub-resources S3 has that this endpoint does not implement: answered with
#: NotImplemented rather than silently treated as a plain GET/PUT.
UNSUPPORTED: dict[str, dict[str, Op]] = _unsupported()
UNSUPPORTED_SUBRESOURCES = frozenset(UNSUPPORTED)
#: The operations answered 501 NotImplemented.
NOT_IMPLEMENTED_OPS = frozenset(
    {op for methods in UNSUPPORTED.values() for op in methods.values()}
    | {Op.UNSUPPORTED_SUBRESOURCE}
)

# Rate-limit class of each operation (per access key, see context.RateLimits);
# anything absent is "read" for GET/HEAD and "write" otherwise.
_LIST_OPS = (Op.LIST_BUCKETS, Op.LIST_OBJECTS, Op.LIST_OBJECTS_V2, Op.LIST_OBJECT_VERSIONS,
             Op.LIST_MULTIPART_UPLOADS, Op.LIST_PARTS, Op.HEAD_BUCKET)
RATE_CLASS: dict[Op, str] = dict.fromkeys(_LIST_OPS, "list")


def rate_class(op: Op, method: str) -> str:
    """The rate-limit class (``read``, ``write`` or ``list``) of ``op``."""
    found = RATE_CLASS.get(op)
    if found is not None:
        return found
    return "read" if method in ("GET", "HEAD") else "write"


# What each operation asks of the bucket (storage.authz): changing the
# bucket's own configuration or deleting it is MANAGE; anything else is READ
# for GET/HEAD and WRITE otherwise.
MANAGE_OPS = frozenset({
    Op.DELETE_BUCKET, Op.PUT_BUCKET_VERSIONING, Op.PUT_BUCKET_TAGGING,
    Op.DELETE_BUCKET_TAGGING, Op.PUT_BUCKET_ACL, Op.PUT_BUCKET_CORS, Op.DELETE_BUCKET_CORS,
})


def action_of(op: Op, method: str) -> Action:
    """The access ``op`` needs to the addressed bucket."""
    if op in MANAGE_OPS:
        return Action.MANAGE
    return Action.READ if method in ("GET", "HEAD") else Action.WRITE


def split_address(host: str, path: str, vhost_domains: tuple[str, ...]) -> tuple[str, str]:
    """``(bucket, key)`` of a request: from the Host header when it is
    ``<bucket>.<domain>`` for one of ``vhost_domains`` (virtual-host style),
    else from the first path segment (path style).  ``path`` is decoded."""
    host = host.strip().lower()
    if host.startswith("["):
        hostname = host.partition("]")[0] + "]"
    else:
        hostname = host.rsplit(":", 1)[0] if ":" in host else host
    rest = path[1:] if path.startswith("/") else path
    for domain in vhost_domains:
        if hostname.endswith("." + domain) and len(hostname) > len(domain) + 1:
            return hostname[: -len(domain) - 1], rest
    bucket, _, key = rest.partition("/")
    return bucket, key


def resolve(method: str, bucket: str, key: str, query: Mapping[str, str],
            headers: Mapping[str, str]) -> Op:
    """The operation a request asks for (headers: lower-case names)."""
    if method == "OPTIONS":
        return Op.PREFLIGHT
    for name in query:
        if name in UNSUPPORTED_SUBRESOURCES:
            return UNSUPPORTED[name].get(method, Op.UNSUPPORTED_SUBRESOURCE)
    if method == "POST" and bucket and not key and "delete" not in query:
        return Op.POST_OBJECT
    if not bucket:
        return Op.LIST_BUCKETS if method in ("GET", "HEAD") else Op.METHOD_NOT_ALLOWED
    if not key:
        return _BUCKET_RESOLVERS.get(method, _not_allowed)(query)
    if "tagging" in query:
        return _OBJECT_TAGGING.get(method, Op.METHOD_NOT_ALLOWED)
    if "acl" in query:
        return _OBJECT_ACL.get(method, Op.METHOD_NOT_ALLOWED)
    if method == "GET":
        return Op.LIST_PARTS if "uploadId" in query else Op.GET_OBJECT
    if method == "PUT":
        copy = "x-amz-copy-source" in headers
        if "uploadId" in query or "partNumber" in query:
            return Op.UPLOAD_PART_COPY if copy else Op.UPLOAD_PART
        return Op.COPY_OBJECT if copy else Op.PUT_OBJECT
    if method == "HEAD":
        return Op.HEAD_OBJECT
    if method == "DELETE":
        return Op.ABORT_MULTIPART_UPLOAD if "uploadId" in query else Op.DELETE_OBJECT
    if method == "POST":
        if "uploads" in query:
            return Op.CREATE_MULTIPART_UPLOAD
        if "uploadId" in query:
            return Op.COMPLETE_MULTIPART_UPLOAD
    return Op.METHOD_NOT_ALLOWED


_OBJECT_TAGGING = {"GET": Op.GET_OBJECT_TAGGING, "PUT": Op.PUT_OBJECT_TAGGING,
                   "DELETE": Op.DELETE_OBJECT_TAGGING}
_OBJECT_ACL = {"GET": Op.GET_OBJECT_ACL, "PUT": Op.PUT_OBJECT_ACL}


def _first(query: Mapping[str, str], table: tuple[tuple[str, Op], ...], default: Op) -> Op:
    for name, op in table:
        if name in query:
            return op
    return default


def _bucket_get(query: Mapping[str, str]) -> Op:
    default = Op.LIST_OBJECTS_V2 if query.get("list-type") == "2" else Op.LIST_OBJECTS
    return _first(query, (
        ("tagging", Op.GET_BUCKET_TAGGING), ("acl", Op.GET_BUCKET_ACL),
        ("cors", Op.GET_BUCKET_CORS), ("location", Op.GET_BUCKET_LOCATION),
        ("versioning", Op.GET_BUCKET_VERSIONING), ("versions", Op.LIST_OBJECT_VERSIONS),
        ("uploads", Op.LIST_MULTIPART_UPLOADS),
    ), default)


def _bucket_put(query: Mapping[str, str]) -> Op:
    return _first(query, (
        ("versioning", Op.PUT_BUCKET_VERSIONING), ("tagging", Op.PUT_BUCKET_TAGGING),
        ("acl", Op.PUT_BUCKET_ACL), ("cors", Op.PUT_BUCKET_CORS),
    ), Op.CREATE_BUCKET)


def _bucket_delete(query: Mapping[str, str]) -> Op:
    return _first(query, (
        ("tagging", Op.DELETE_BUCKET_TAGGING), ("cors", Op.DELETE_BUCKET_CORS),
    ), Op.DELETE_BUCKET)


def _bucket_post(query: Mapping[str, str]) -> Op:
    return Op.DELETE_OBJECTS if "delete" in query else Op.METHOD_NOT_ALLOWED


def _not_allowed(query: Mapping[str, str]) -> Op:
    return Op.METHOD_NOT_ALLOWED


_BUCKET_RESOLVERS = {
    "GET": _bucket_get, "PUT": _bucket_put, "DELETE": _bucket_delete, "POST": _bucket_post,
    "HEAD": lambda query: Op.HEAD_BUCKET,
}
