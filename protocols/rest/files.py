"""The Simple REST API: ``/api/v1/files`` with an S3 key pair as API key.

File ids
--------
A file id is the unpadded url-safe base64 of ``<bucket>/<key>`` (UTF-8).  It
is stable across overwrites (a new upload to the same key keeps its id, as a
path would), needs no lookup table, and is the same for a file whether it was
written over S3, REST or SFTP.  Clients must treat it as opaque.

Listing pages: ``?limit=`` (1..1000, default 100) returns ``hasMore``; when it
is true, ``nextCursor`` is given and passed back as ``?cursor=``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import mimetypes
from collections.abc import AsyncIterator
from typing import Any

from quart import Blueprint, Response, request

from protocols.rest.common import (
    ApiError,
    KeyAuth,
    authenticate_api_key,
    check_rate,
    check_request_params,
    decode_cursor,
    encode_cursor,
    from_storage,
    iso,
    json_response,
    refuse_nul,
)
from protocols.rest.transfer import (
    attachment,
    drain_body,
    opened_stream,
    parse_range,
    read_upload_form,
)
from storage import errors, events, names
from storage.authz import AccessDenied, Action
from storage.buckets import BucketInfo
from storage.core import StorageCore
from storage.objects import ObjectInfo
from storage.ratelimit import RateLimiter
from storage.signup import default_bucket

log = logging.getLogger(__name__)


def file_id(bucket: str, key: str) -> str:
    """The opaque, stable id of ``bucket/key``."""
    return base64.urlsafe_b64encode(f"{bucket}/{key}".encode()).decode().rstrip("=")


def parse_file_id(fid: str) -> tuple[str, str]:
    """``(bucket, key)`` of a file id; 404 if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(fid + "=" * (-len(fid) % 4)).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ApiError(404, "NotFound", "No file has this id.") from None
    bucket, sep, key = refuse_nul("id", raw).partition("/")
    if not sep or not bucket or not key:
        raise ApiError(404, "NotFound", "No file has this id.")
    return bucket, key


def check_key(key: str) -> str:
    """Validate an object key given by a client (the core's one key rule)."""
    try:
        return names.check_key(key)
    except errors.StorageError as exc:
        raise ApiError(400, "InvalidKey", exc.message) from None


def guess_type(key: str, given: str = "") -> str:
    """The content type to store: the client's, else one guessed from the name."""
    given = given.strip()
    generic = ("application/octet-stream", "application/x-www-form-urlencoded")
    if given and given.lower() not in generic:
        return given
    return mimetypes.guess_type(key)[0] or given or "application/octet-stream"


async def _from_rest() -> None:
    # Async, so it runs in the request's own task: the changes the handler
    # makes are attributed to this surface (storage.events).
    events.set_origin("rest")


def create_files_blueprint(services: StorageCore) -> Blueprint:
    """The ``/api/v1/files`` routes over a node's services."""
    bp = Blueprint("files_v1", __name__)
    bp.before_request(check_request_params)
    bp.before_request(_from_rest)
    s = services.settings.accounts
    writes = RateLimiter(s.rest_writes_per_second, 1.0)
    reads = RateLimiter(s.rest_reads_per_second, 1.0)
    lists = RateLimiter(s.rest_lists_per_second, 1.0)
    max_upload = s.rest_max_upload
    objects = services.objects

    async def allowed_bucket(auth: KeyAuth, name: str | None, action: Action) -> BucketInfo:
        try:
            if not name:
                return await default_bucket(services.buckets, auth.account.id)
            return await services.authz.bucket(auth.account.id, name, action)
        except AccessDenied:
            raise ApiError(403, "AccessDenied", "You do not have access to this bucket.") from None
        except errors.StorageError as exc:
            raise from_storage(exc) from None

    def describe(info: ObjectInfo, *, full: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"id": file_id(info.bucket, info.key), "key": info.key}
        if full:
            out["bucket"] = info.bucket
        out.update(size=info.size, contentType=info.content_type or "application/octet-stream")
        if full:
            out["etag"] = info.etag
            out["createdAt"] = iso(info.last_modified)
        out["updatedAt"] = iso(info.last_modified)
        return out

    # -- upload -----------------------------------------------------------------

    async def capped(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        total = 0
        async for piece in body:
            total += len(piece)
            if total > max_upload:
                raise ApiError(413, "PayloadTooLarge",
                               f"Uploads are limited to {max_upload} bytes.")
            yield piece

    async def raw_body() -> AsyncIterator[bytes]:
        async for piece in request.body:
            if piece:
                yield piece

    async def upload_raw(auth: KeyAuth) -> ObjectInfo:
        bucket_name = request.args.get("bucket") or request.headers.get("X-Bucket", "")
        key = request.args.get("key") or request.headers.get("X-Key", "") or request.headers.get(
            "X-File-Name", "")
        if not key:
            raise ApiError(400, "MissingKey",
                           "A raw upload needs a key (?key= or the X-Key header).")
        check_key(key)
        bucket = await allowed_bucket(auth, bucket_name, Action.WRITE)
        length = request.content_length
        try:
            await services.accounts.check_room(bucket.account_id, length, auth.account)
        except errors.StorageError as exc:
            raise from_storage(exc) from None
        return await objects.put_object(
            bucket, key, capped(raw_body()),
            content_type=guess_type(key, request.headers.get("Content-Type", "")),
            expected_size=length,
        )

    async def upload_form(auth: KeyAuth, boundary: str) -> ObjectInfo:
        async def known_bucket(fields: dict[str, str]) -> None:
            if fields["bucket"]:
                # Known already: refuse before storing anything.
                await allowed_bucket(auth, fields["bucket"], Action.WRITE)

        form = await read_upload_form(
            boundary, lambda body: objects.store_stream(capped(body)),
            fields={"bucket": request.args.get("bucket", ""),
                    "key": request.args.get("key", "")},
            before_file=known_bucket)
        key = check_key(form.fields["key"] or form.file_name)
        bucket = await allowed_bucket(auth, form.fields["bucket"], Action.WRITE)
        return await objects.commit(
            bucket, key, form.stored, etag=form.stored.md5.hex(),
            content_type=guess_type(key, form.content_type),
        )

    @bp.post("/api/v1/files")
    async def upload() -> Any:
        auth = await authenticate_api_key(services.accounts)
        check_rate(writes, auth.access_key)
        length = request.content_length
        mimetype = request.mimetype
        try:
            if length is not None and length > max_upload + 64 * 1024:
                raise ApiError(413, "PayloadTooLarge",
                               f"Uploads are limited to {max_upload} bytes.")
            try:
                if mimetype == "multipart/form-data":
                    boundary = request.mimetype_params.get("boundary", "")
                    info = await upload_form(auth, boundary)
                else:
                    info = await upload_raw(auth)
            except errors.StorageError as exc:
                raise from_storage(exc) from None
        except ApiError as exc:
            # Most clients only read the answer once their body is sent:
            # discard the rest (bounded in bytes and time) so they see the
            # error instead of a stalled upload, then close the connection.
            if not await drain_body():
                exc.headers["Connection"] = "close"
            raise
        out = describe(info, full=True)
        out.pop("updatedAt")
        out.pop("etag")
        return json_response(out, 201, {"ETag": f'"{info.etag}"'})

    # -- list -------------------------------------------------------------------

    @bp.get("/api/v1/files")
    async def list_files() -> Any:
        auth = await authenticate_api_key(services.accounts)
        check_rate(lists, auth.access_key)
        try:
            limit = int(request.args.get("limit", "100"))
        except ValueError:
            raise ApiError(400, "InvalidArgument", "limit must be an integer.") from None
        if not 1 <= limit <= 1000:
            raise ApiError(400, "InvalidArgument", "limit must be between 1 and 1000.")
        prefix = request.args.get("prefix", "")
        marker = decode_cursor(request.args.get("cursor", ""))
        bucket = await allowed_bucket(auth, request.args.get("bucket"), Action.READ)
        page = await objects.list_objects(bucket, prefix=prefix, marker=marker, max_keys=limit)
        files = [
            {"id": file_id(bucket.name, e.key), "key": e.key, "size": e.size,
             "contentType": e.content_type or "application/octet-stream",
             "updatedAt": iso(e.last_modified)}
            for e in page.entries
        ]
        out: dict[str, Any] = {"files": files, "hasMore": page.is_truncated}
        if page.is_truncated and page.next_marker:
            out["nextCursor"] = encode_cursor(page.next_marker)
        return json_response(out)

    # -- one file ----------------------------------------------------------------

    async def find(auth: KeyAuth, fid: str, action: Action) -> tuple[BucketInfo, ObjectInfo]:
        bucket_name, key = parse_file_id(fid)
        try:
            bucket = await services.authz.bucket(auth.account.id, bucket_name, action)
        except errors.NoSuchBucket:
            raise ApiError(404, "NotFound", "No file has this id.") from None
        except AccessDenied:
            raise ApiError(403, "AccessDenied", "You do not have access to this file.") from None
        try:
            return bucket, await objects.head_object(bucket, key)
        except (errors.NoSuchKey, errors.NoSuchVersion):
            raise ApiError(404, "NotFound", "No file has this id.") from None

    @bp.get("/api/v1/files/<fid>")
    async def get_file(fid: str) -> Any:
        auth = await authenticate_api_key(services.accounts)
        check_rate(reads, auth.access_key)
        _bucket, info = await find(auth, fid, Action.READ)
        if request.args.get("meta", "").lower() in ("1", "true", "yes"):
            return json_response(describe(info, full=True))
        size = info.size
        headers = {
            "Content-Type": info.content_type or "application/octet-stream",
            "ETag": f'"{info.etag}"', "Accept-Ranges": "bytes",
            "Last-Modified": info.last_modified.strftime("%a, %d %b %Y %H:%M:%S GMT"),
            "Content-Disposition": attachment(info.key),
        }
        start, stop, status = 0, size, 200
        rng = request.headers.get("Range", "").strip()
        if rng:
            parsed = parse_range(rng, size)
            if parsed is None:
                raise ApiError(416, "InvalidRange", "The requested range is not satisfiable.",
                               {"Content-Range": f"bytes */{size}"})
            start, stop = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        headers["Content-Length"] = str(stop - start)
        response = Response(await opened_stream(objects.read_object(info, start, stop), fid),
                            status=status, headers=headers)
        response.timeout = None  # large downloads may take long
        return response

    @bp.delete("/api/v1/files/<fid>")
    async def delete_file(fid: str) -> Any:
        auth = await authenticate_api_key(services.accounts)
        check_rate(writes, auth.access_key)
        bucket, info = await find(auth, fid, Action.WRITE)
        await objects.delete_object(bucket, info.key)
        return json_response({"success": True})

    return bp
