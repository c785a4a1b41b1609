"""The v2-objects routes over the shared storage core (seed 003).

Authentication: ``Authorization: Bearer ACCESS_KEY:SECRET_KEY``, the key
pair the console's "Generate New Key" (``POST /api/keys``) hands out, as the
Simple REST API takes it (``X-API-Key`` works too).  An object written here
is the same object S3, SFTP and every other REST dialect see: its id is the
Simple REST API's file id, its metadata the S3 user metadata.
"""

from __future__ import annotations

import posixpath
from collections.abc import AsyncIterator
from typing import Any

from quart import Blueprint, Response, g, request

from protocols.rest.common import (
    ApiError,
    KeyAuth,
    authenticate_api_key,
    check_request_params,
    decode_cursor,
    encode_cursor,
    iso,
    json_response,
    read_json,
)
from protocols.rest.files import file_id
from protocols.rest.v2objects import limits
from protocols.rest.v2objects.errors import V2Error, from_api_error, from_storage
from storage import errors, events, names
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


async def _from_v2() -> None:
    # In the request's own task, so its changes are attributed to this surface.
    events.set_origin("v2objects")


def create_v2objects_blueprint(services: StorageCore) -> Blueprint:
    """The ``/v2/buckets`` routes."""
    bp = Blueprint("v2objects", __name__)
    bp.before_request(check_request_params)
    bp.before_request(_from_v2)
    windows = RateWindows(services.db)
    max_upload = services.settings.accounts.rest_max_upload
    objects = services.objects

    @bp.errorhandler(V2Error)
    async def v2_error(exc: V2Error) -> Response:
        return exc.response()

    @bp.errorhandler(ApiError)
    async def shared_error(exc: ApiError) -> Response:
        return from_api_error(exc).response()

    @bp.errorhandler(errors.StorageError)
    async def storage_error(exc: errors.StorageError) -> Response:
        return from_storage(exc).response()

    @bp.after_request
    async def rate_headers(response: Response) -> Response:
        # Every answer to an identified caller carries its window, errors too.
        for name, value in g.get("v2_rate_headers", {}).items():
            response.headers[name] = value
        return response

    async def caller() -> KeyAuth:
        auth = await authenticate_api_key(services.accounts)
        decision = await limits.hit(windows, auth.account.id, auth.account.plan)
        if decision is not None:
            g.v2_rate_headers = limits.headers(decision)
            if not decision.allowed:
                full = decision.refused_by
                assert full is not None
                raise V2Error(429, "Too many requests: retry after the Retry-After seconds.",
                              {"limit": full.limit, "window_seconds": full.window},
                              {"Retry-After": str(full.retry_after())})
        return auth

    async def bucket_for(auth: KeyAuth, name: str, action: Action) -> BucketInfo:
        try:
            return await services.authz.bucket(auth.account.id, name, action)
        except errors.NoSuchBucket:
            raise V2Error(404, "The specified bucket does not exist",
                          {"bucket": name}) from None

    async def head(bucket: BucketInfo, key: str) -> ObjectInfo:
        try:
            info = await objects.head_object(bucket, key)
        except (errors.NoSuchKey, errors.NoSuchVersion):
            info = None
        if info is None or info.is_delete_marker:
            raise V2Error(404, "The specified object does not exist",
                          {"bucket": bucket.name, "key": key})
        return info

    def check_key(key: str) -> str:
        try:
            return names.check_key(key)
        except errors.StorageError as exc:
            raise V2Error(400, exc.message, {"key": key}) from None

    async def capped() -> AsyncIterator[bytes]:
        total = 0
        async for piece in request.body:
            total += len(piece)
            if total > max_upload:
                raise V2Error(413, f"Objects are limited to {max_upload} bytes.")
            if piece:
                yield piece

    # -- objects -------------------------------------------------------------------

    @bp.put("/v2/buckets/<bucket>/objects/<path:key>")
    async def put_object(bucket: str, key: str) -> Any:
        auth = await caller()
        check_key(key)
        meta = user_metadata()
        length = request.content_length
        if length is not None and length > max_upload:
            raise V2Error(413, f"Objects are limited to {max_upload} bytes.")
        target = await bucket_for(auth, bucket, Action.WRITE)
        info = await objects.put_object(
            target, key, capped(),
            content_type=content_type_for(key, request.headers.get("Content-Type", "")),
            user_metadata=meta, expected_size=length,
        )
        out = describe(info)
        return json_response({k: out[k] for k in ("id", "bucket", "key", "size", "etag")}, 201,
                             {"ETag": f'"{info.etag}"'})

    @bp.get("/v2/buckets/<bucket>/objects/<path:key>")
    async def get_object(bucket: str, key: str) -> Any:
        auth = await caller()
        info = await head(await bucket_for(auth, bucket, Action.READ), key)
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
        response = Response(objects.read_object(info), status=200, headers=headers)
        response.timeout = None  # large downloads may take long
        return response

    @bp.delete("/v2/buckets/<bucket>/objects/<path:key>")
    async def delete_object(bucket: str, key: str) -> Any:
        auth = await caller()
        target = await bucket_for(auth, bucket, Action.WRITE)
        await head(target, key)
        await objects.delete_object(target, key)
        return Response(b"", status=204)

    @bp.get("/v2/buckets/<bucket>/objects")
    async def list_objects(bucket: str) -> Any:
        auth = await caller()
        raw = request.args.get("limit", "1000")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise V2Error(400, "limit must be an integer between 1 and 1000.", {"limit": raw})
        try:
            marker = decode_cursor(request.args.get("cursor", ""))
        except ApiError:
            raise V2Error(400, "The cursor is not valid.") from None
        target = await bucket_for(auth, bucket, Action.READ)
        page = await objects.list_objects(target, prefix=request.args.get("prefix", ""),
                                          marker=marker, max_keys=int(raw))
        more = page.is_truncated and bool(page.next_marker)
        return json_response({
            "objects": [{"key": e.key, "size": e.size, "updated_at": iso(e.last_modified)}
                        for e in page.entries],
            "cursor": encode_cursor(page.next_marker) if more and page.next_marker else None,
            "has_more": more,
        })

    # -- buckets -------------------------------------------------------------------

    @bp.post("/v2/buckets")
    async def create_bucket() -> Any:
        auth = await caller()
        body = await read_json()
        name, region = body.get("name"), body.get("region", services.settings.cluster.region)
        versioning = body.get("versioning", False)
        if not isinstance(name, str) or not name:
            raise V2Error(400, "The field 'name' is required.", {"field": "name"})
        if region not in REGIONS and region != services.settings.cluster.region:
            raise V2Error(400, f"Unsupported region; use one of {', '.join(REGIONS)}.",
                          {"region": region})
        if not isinstance(versioning, bool):
            raise V2Error(400, "The field 'versioning' must be true or false.")
        try:
            info = await services.buckets.create(auth.account.id, name, region)
        except (errors.BucketAlreadyExists, errors.BucketAlreadyOwnedByYou):
            raise V2Error(409, "A bucket with this name already exists.",
                          {"bucket": name}) from None
        except errors.StorageError as exc:
            raise from_storage(exc, {"bucket": name}) from None
        if versioning:
            info = await services.buckets.set_versioning(info, "Enabled")
        return json_response({"name": info.name, "region": info.region,
                              "versioning": info.versioning == "Enabled",
                              "created_at": iso(info.created_at)},
                             201, {"Location": f"/v2/buckets/{info.name}"})

    @bp.delete("/v2/buckets/<bucket>")
    async def delete_bucket(bucket: str) -> Any:
        auth = await caller()
        target = await bucket_for(auth, bucket, Action.MANAGE)
        try:
            await services.buckets.delete(target)
        except errors.BucketNotEmpty:
            raise V2Error(409, "Bucket must be empty before deletion.",
                          {"bucket": bucket}) from None
        return Response(b"", status=204)

    return bp
