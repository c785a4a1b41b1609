"""Helpers the S3 operation handlers share: request fields, quota and
conditional-write prechecks, version headers, small config bodies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from urllib.parse import unquote_plus

from protocols.s3 import checksums as cks
from protocols.s3 import xml as s3xml
from protocols.s3.body import BodyReader
from protocols.s3.conditions import http_date
from protocols.s3.context import Ctx
from protocols.s3.errors import (
    S3Error,
    invalid_argument,
    not_implemented,
)
from protocols.s3.names import (
    refuse_nul,
    validate_key_prefix,
)
from protocols.s3.request import Request, from_mail_safe
from storage import errors as serr
from storage.buckets import BucketInfo
from storage.multipart import MAX_PART_NUMBER
from storage.objects import ObjectInfo, WriteCondition

#: S3's limit on the user metadata of one object (names + values, UTF-8).
MAX_METADATA_BYTES = 2048

#: Largest single PUT (S3's own limit; bigger objects go multipart).
MAX_PUT_SIZE = 5 * 1024**3

# Object headers S3 stores with the object and returns on GET/HEAD.
STORED_HEADERS = (
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
    "x-amz-website-redirect-location",
)

# Write headers asking for features this endpoint does not have: refused, since
# storing the object anyway would leave the client believing it encrypted
# (with S3's, KMS's or its own key) or locked.
_UNSUPPORTED_WRITE_HEADERS = (
    "x-amz-server-side-encryption", "x-amz-copy-source-server-side-encryption",
    "x-amz-object-lock-", "x-amz-bucket-object-lock-",
)


def refuse_unsupported_headers(headers: Mapping[str, str]) -> None:
    """NotImplemented for a write header of :data:`_UNSUPPORTED_WRITE_HEADERS`.

    ``headers`` are a request's headers or a POST form's fields.  An explicit
    "no" (object lock disabled) is no request for the feature and passes.
    """
    for name, value in headers.items():
        if name.startswith(_UNSUPPORTED_WRITE_HEADERS) and value.strip().lower() != "false":
            raise not_implemented(
                "Object lock" if "object-lock" in name else "Server-side encryption")


def encode_token(after: str) -> str:
    """A continuation token: the opaque form of the name a page ended at."""
    return base64.urlsafe_b64encode(after.encode("utf-8")).decode("ascii")


def decode_token(token: str | None, name: str) -> str | None:
    """The name :func:`_encode_token` made ``token`` of (None without a token);
    InvalidArgument naming parameter ``name`` for a token no node issued."""
    if token is None:
        return None
    try:
        after = base64.b64decode(token.encode("ascii"), altchars=b"-_",
                                 validate=True).decode("utf-8")
        validate_key_prefix(after, name)
    except (binascii.Error, UnicodeError, ValueError, S3Error):
        raise invalid_argument("The continuation token provided is incorrect", name,
                               token) from None
    return after


def int_param(req: Request, name: str, default: int, low: int, high: int) -> int:
    raw = req.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.strip().lstrip("-").isdigit():
        raise invalid_argument(f"Provided {name} not an integer or within integer range",
                               name, raw)
    value = int(raw)
    if value < low:
        raise invalid_argument(f"Argument {name} must be an integer between {low} and "
                               f"{high}", name, raw)
    return min(value, high)


def object_fields(
    headers: Mapping[str, str]
) -> tuple[str, dict[str, str], dict[str, str]]:
    """Content-Type, user metadata and stored headers of a PUT/POST/COPY.

    ``headers`` are a request's headers, or the fields of a POST form.
    """
    content_type = headers.get("content-type") or "binary/octet-stream"
    # A request head cannot carry a NUL, but a POST form field or an
    # RFC 2047 encoded word can, and the database cannot store one.
    refuse_nul(content_type, "Content-Type")
    meta: dict[str, str] = {}
    total = 0
    for name, value in headers.items():
        if name.startswith("x-amz-meta-"):
            short = name[len("x-amz-meta-"):]
            value = from_mail_safe(value)
            refuse_nul(short + value, name)
            meta[short] = value
            total += len(short.encode()) + len(value.encode())
    if total > MAX_METADATA_BYTES:
        raise S3Error("MetadataTooLarge", extra={"MaxSizeAllowed": MAX_METADATA_BYTES,
                                                 "Size": total})
    stored: dict[str, str] = {}
    for name in STORED_HEADERS:
        sent = headers.get(name)
        if sent is None:
            continue
        value = sent
        if name == "content-encoding" and "aws-chunked" in value.lower():
            # aws-chunked is transfer framing, not the object's encoding;
            # any other value is stored exactly as sent.
            value = ",".join(
                e.strip() for e in value.split(",")
                if e.strip() and e.strip().lower() != "aws-chunked"
            )
            if not value:
                continue
        refuse_nul(value, name)
        stored[name] = value
    return content_type, meta, stored


async def check_room(ctx: Ctx, bucket: BucketInfo, size: int | None) -> None:
    """Refuse before reading a body that cannot fit in the bucket owner's quota
    (storage's one pre-check; the commit enforces the quota exactly)."""
    await ctx.core.accounts.check_room(bucket.account_id, size, ctx.account)


async def precheck(ctx: Ctx, bucket: BucketInfo, key: str,
                    condition: WriteCondition | None) -> None:
    """Refuse a conditional write before its body is read.

    The commit checks the condition again, atomically; this only saves
    receiving and storing bytes that could not become the object.
    """
    if condition is None:
        return
    try:
        info = await ctx.objects.head_object(bucket, key)
    except serr.NoSuchKey:
        condition.check(None)
    else:
        condition.check({"etag": info.etag, "is_delete_marker": info.is_delete_marker})


def version_headers(bucket: BucketInfo, info: ObjectInfo) -> list[tuple[str, str]]:
    """x-amz-version-id of an existing version (read, tagged, ...)."""
    if bucket.versioning or info.version_id != "null":
        return [("x-amz-version-id", info.version_id)]
    return []


def written_version_headers(info: ObjectInfo) -> list[tuple[str, str]]:
    """x-amz-version-id of a version just written: S3 names only real ids,
    none for the null version a suspended bucket overwrites."""
    if info.version_id != "null":
        return [("x-amz-version-id", info.version_id)]
    return []


def content_md5(req: Request) -> bytes | None:
    """The decoded Content-MD5 header, None when absent."""
    value = req.header("content-md5")
    return cks.parse_content_md5(value) if value is not None else None


async def config_body(ctx: Ctx, limit: int = s3xml.MAX_XML_BODY_SIZE) -> bytes:
    """A small configuration document (tags, ACL, CORS), Content-MD5 checked."""
    req = ctx.req
    body = await BodyReader(req, ctx.signing).read_all(limit)
    md5 = content_md5(req)
    if md5 is not None and hashlib.md5(body).digest() != md5:
        raise S3Error("BadDigest")
    return body


def tagging_header(headers: Mapping[str, str]) -> dict[str, str] | None:
    """The tags of ``x-amz-tagging`` (URL query form), None when absent."""
    raw = headers.get("x-amz-tagging")
    if raw is None:
        return None
    malformed = invalid_argument(
        "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query "
        "parameters without tag name duplicates.", "x-amz-tagging", raw)
    pairs: list[tuple[str, str]] = []
    try:
        for part in raw.strip().split("&"):
            if part:
                name, _, value = part.partition("=")
                pairs.append((unquote_plus(name, errors="strict"),
                              unquote_plus(value, errors="strict")))
    except UnicodeDecodeError:
        raise malformed from None
    if len({k for k, _ in pairs}) != len(pairs):
        raise malformed
    return s3xml.validate_tags(pairs, max_tags=s3xml.MAX_OBJECT_TAGS)


async def addressed_object(
    ctx: Ctx, bucket: BucketInfo
) -> ObjectInfo:
    """The version a request names (the latest, or ``?versionId=``).

    NoSuchKey / NoSuchVersion if absent; a delete marker named by its
    version id is 405 MethodNotAllowed, as S3 answers.
    """
    req = ctx.req
    loaded = ctx.loaded
    if loaded is not None and loaded.obj is not None and ctx.bucket_name == req.bucket:
        # Fetched in the authentication round trip.
        if isinstance(loaded.obj, serr.StorageError):
            raise loaded.obj
        info = loaded.obj
    else:
        info = await ctx.objects.head_object(
            bucket, req.key, req.query.get("versionId") or None)
    if info.is_delete_marker:
        raise S3Error("MethodNotAllowed", headers={
            "x-amz-delete-marker": "true", "x-amz-version-id": info.version_id,
            "Last-Modified": http_date(info.last_modified),
        }, extra={"Method": req.method, "ResourceType": "DeleteMarker"})
    return info


def part_number(req: Request) -> int:
    """The ``partNumber`` query parameter (1..10000, else InvalidArgument)."""
    raw = req.query.get("partNumber", "")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PART_NUMBER:
        raise invalid_argument("Part number must be an integer between 1 and 10000, "
                               "inclusive", "partNumber", raw)
    return int(raw)
