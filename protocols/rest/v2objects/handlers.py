"""The v2-objects endpoints over the shared storage core (seed 003).

Authentication: ``Authorization: Bearer ACCESS_KEY:SECRET_KEY``, the key
pair the console's "Generate New Key" (``POST /api/keys``) hands out, as the
Simple REST API takes it (``X-API-Key`` works too).  An object written here
is the same object S3, SFTP and every other REST dialect see: its id is the
Simple REST API's file id, its metadata the S3 user metadata.  Each
endpoint is a method of :class:`V2ObjectsApi`; routes.py maps paths to them.
"""

from __future__ import annotations

import posixpath
from collections.abc import AsyncIterator
from typing import Any

from quart import Response, g, request

from protocols.rest.common import (
    ApiError,
    KeyAuth,
    authenticate_api_key,
    decode_cursor,
    encode_cursor,
    iso,
    json_response,
    read_json,
)
from protocols.rest.files import file_id
from protocols.rest.v2objects import limits
from protocols.rest.v2objects.errors import V2Error, from_storage
from storage import errors, names
from storage.authz import Action
from storage.buckets import BucketInfo
from storage.core import StorageCore
from storage.objects import ObjectInfo
from storage.rate_windows import RateWindows

META_PREFIX = "x-cloudstore-meta-"
# As S3 bounds user metadata (the same metadata, seen through S3).
META_LIMIT = 2048
# Appendix A of the document.
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1",
           "ap-northeast-1")
# Appendix B: the content type inferred when the upload names none.
CONTENT_TYPES = {
    ".txt": "text/plain", ".html": "text/html", ".json": "application/json",
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png",
    ".pdf": "application/pdf",
}
DEFAULT_TYPE = "application/octet-stream"


def content_type_for(key: str, given: str) -> str:
    """The client's Content-Type, else Appendix B's by extension, else the default.

    A form-encoded type is what curl sends for ``--data-binary`` when told
    nothing, so it counts as "not specified".
    """
    given = given.strip()
    if given and given.split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        return given
    ext = posixpath.splitext(key)[1].lower()
    return CONTENT_TYPES.get(ext, DEFAULT_TYPE)


def user_metadata() -> dict[str, str]:
    """``X-CloudStore-Meta-*`` request headers as metadata (names lower-cased)."""
    meta = {name.lower()[len(META_PREFIX):]: value for name, value in request.headers.items()
            if name.lower().startswith(META_PREFIX) and len(name) > len(META_PREFIX)}
    if sum(len(k) + len(v) for k, v in meta.items()) > META_LIMIT:
        raise V2Error(400, f"Custom metadata is limited to {META_LIMIT} bytes.")
    return meta


def describe(info: ObjectInfo) -> dict[str, Any]:
    """The document's object model."""
    return {
        "id": f"obj_{file_id(info.bucket, info.key)}", "bucket": info.bucket, "key": info.key,
        "size": info.size, "content_type": info.content_type or DEFAULT_TYPE,
        "etag": info.etag, "created_at": iso(info.last_modified),
        "updated_at": iso(info.last_modified), "metadata": dict(info.user_metadata),
    }


def _etags(header: str) -> set[str]:
    return {t.strip().removeprefix("W/").strip('"') for t in header.split(",") if t.strip()}


def check_key(key: str) -> str:
    """The key, checked with the core's one key rule (400 if refused)."""
    try:
        return names.check_key(key)
    except errors.StorageError as exc:
        raise V2Error(400, exc.message, {"key": key}) from None


class V2ObjectsApi:
    """The v2-objects endpoints over a node's storage core."""

    def __init__(self, services: StorageCore) -> None:
        self.services = services
        self.objects = services.objects
        self.windows = RateWindows(services.db)
        self.max_upload = services.settings.accounts.rest_max_upload

    # -- shared steps --------------------------------------------------------------

    async def caller(self) -> KeyAuth:
        """The authenticated caller, counted in its plan's windows (429 when full)."""
        auth = await authenticate_api_key(self.services.accounts)
        decision = await limits.hit(self.windows, auth.account.id, auth.account.plan)
        if decision is not None:
            # routes.py adds them to every answer, errors included.
            g.v2_rate_headers = limits.headers(decision)
            if not decision.allowed:
                full = decision.refused_by
                assert full is not None
                raise V2Error(429, "Too many requests: retry after the Retry-After seconds.",
                              {"limit": full.limit, "window_seconds": full.window},
                              {"Retry-After": str(full.retry_after())})
        return auth

    async def bucket_for(self, auth: KeyAuth, name: str, action: Action) -> BucketInfo:
        """The bucket if the caller may do ``action`` on it (404 / 403 otherwise)."""
        try:
            return await self.services.authz.bucket(auth.account.id, name, action)
        except errors.NoSuchBucket:
            raise V2Error(404, "The specified bucket does not exist",
                          {"bucket": name}) from None

    async def head(self, bucket: BucketInfo, key: str) -> ObjectInfo:
        """The object's latest version (404 when there is none)."""
        try:
            info = await self.objects.head_object(bucket, key)
        except (errors.NoSuchKey, errors.NoSuchVersion):
            info = None
        if info is None or info.is_delete_marker:
            raise V2Error(404, "The specified object does not exist",
                          {"bucket": bucket.name, "key": key})
        return info

    async def capped(self) -> AsyncIterator[bytes]:
        """The request body, refused (413) past the upload limit."""
        total = 0
        async for piece in request.body:
            total += len(piece)
            if total > self.max_upload:
                raise V2Error(413, f"Objects are limited to {self.max_upload} bytes.")
            if piece:
                yield piece

    # -- objects -------------------------------------------------------------------

    async def put_object(self, bucket: str, key: str) -> Response:
        """PUT an object: 201 with its id, bucket, key, size and ETag."""
        auth = await self.caller()
        check_key(key)
        meta = user_metadata()
        length = request.content_length
        if length is not None and length > self.max_upload:
            raise V2Error(413, f"Objects are limited to {self.max_upload} bytes.")
        target = await self.bucket_for(auth, bucket, Action.WRITE)
        info = await self.objects.put_object(
            target, key, self.capped(),
            content_type=content_type_for(key, request.headers.get("Content-Type", "")),
            user_metadata=meta, expected_size=length,
        )
        out = describe(info)
        return json_response({k: out[k] for k in ("id", "bucket", "key", "size", "etag")}, 201,
                             {"ETag": f'"{info.etag}"'})

    async def get_object(self, bucket: str, key: str) -> Response:
        """GET an object's bytes (304 for a matching If-None-Match)."""
        auth = await self.caller()
        info = await self.head(await self.bucket_for(auth, bucket, Action.READ), key)
        headers = {
            "ETag": f'"{info.etag}"',
            "Last-Modified": info.last_modified.strftime("%a, %d %b %Y %H:%M:%S GMT"),
        }
        inm = request.headers.get("If-None-Match", "")
        if inm and (inm.strip() == "*" or info.etag in _etags(inm)):
            return Response(b"", status=304, headers=headers)
        headers.update({f"X-CloudStore-Meta-{k}": v for k, v in info.user_metadata.items()})
        headers["Content-Type"] = info.content_type or DEFAULT_TYPE
        headers["Content-Length"] = str(info.size)
        response = Response(self.objects.read_object(info), status=200, headers=headers)
        response.timeout = None  # large downloads may take long
        return response

    async def delete_object(self, bucket: str, key: str) -> Response:
        """DELETE an object: 204 (404 if there is none)."""
        auth = await self.caller()
        target = await self.bucket_for(auth, bucket, Action.WRITE)
        await self.head(target, key)
        await self.objects.delete_object(target, key)
        return Response(b"", status=204)

    async def list_objects(self, bucket: str) -> Response:
        """GET a page of keys: ``prefix``, ``limit`` (1-1000), opaque ``cursor``."""
        auth = await self.caller()
        raw = request.args.get("limit", "1000")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise V2Error(400, "limit must be an integer between 1 and 1000.", {"limit": raw})
        try:
            marker = decode_cursor(request.args.get("cursor", ""))
        except ApiError:
            raise V2Error(400, "The cursor is not valid.") from None
        target = await self.bucket_for(auth, bucket, Action.READ)
        page = await self.objects.list_objects(target, prefix=request.args.get("prefix", ""),
                                               marker=marker, max_keys=int(raw))
        more = page.is_truncated and bool(page.next_marker)
        return json_response({
            "objects": [{"key": e.key, "size": e.size, "updated_at": iso(e.last_modified)}
                        for e in page.entries],
            "cursor": encode_cursor(page.next_marker) if more and page.next_marker else None,
            "has_more": more,
        })

    # -- buckets -------------------------------------------------------------------

    async def create_bucket(self) -> Response:
        """POST a bucket ``{name, region, versioning}``: 201 with a Location."""
        auth = await self.caller()
        body = await read_json()
        home = self.services.settings.cluster.region
        name, region = body.get("name"), body.get("region", home)
        versioning = body.get("versioning", False)
        if not isinstance(name, str) or not name:
            raise V2Error(400, "The field 'name' is required.", {"field": "name"})
        if region not in REGIONS and region != home:
            raise V2Error(400, f"Unsupported region; use one of {', '.join(REGIONS)}.",
                          {"region": region})
        if not isinstance(versioning, bool):
            raise V2Error(400, "The field 'versioning' must be true or false.")
        try:
            info = await self.services.buckets.create(auth.account.id, name, region)
        except (errors.BucketAlreadyExists, errors.BucketAlreadyOwnedByYou):
            raise V2Error(409, "A bucket with this name already exists.",
                          {"bucket": name}) from None
        except errors.StorageError as exc:
            raise from_storage(exc, {"bucket": name}) from None
        if versioning:
            info = await self.services.buckets.set_versioning(info, "Enabled")
        # The document's Location is relative to its /v2 base URL.
        return json_response({"name": info.name, "region": info.region,
                              "versioning": info.versioning == "Enabled",
                              "created_at": iso(info.created_at)},
                             201, {"Location": f"/v2/buckets/{info.name}"})

    async def delete_bucket(self, bucket: str) -> Response:
        """DELETE an empty bucket: 204 (409 while it holds objects)."""
        auth = await self.caller()
        target = await self.bucket_for(auth, bucket, Action.MANAGE)
        try:
            await self.services.buckets.delete(target)
        except errors.BucketNotEmpty:
            raise V2Error(409, "Bucket must be empty before deletion.",
                          {"bucket": bucket}) from None
        return Response(b"", status=204)
