"""Share links: ``/api/shares...`` and the short link ``/s/{code}``.

Management (session cookie, or an API key as the Simple REST API takes it):

* ``POST /api/shares`` shares an existing object (JSON: ``bucket``,
  ``objectKey``, optional ``fileName``, ``fileSize``, ``password``,
  ``expiresIn`` one of 1h/24h/7d/30d, ``maxDownloads``) -> 201
  ``{id, code, url, expiresAt, maxDownloads}``.  The caller needs READ on the
  bucket (storage/authz.py); ``fileSize`` is checked against the object.
* ``POST /api/shares/upload``: multipart ``file`` (plus the same options as
  form fields, and optional ``bucket``/``key``): stored under
  ``shares/<random>/<file name>`` of the default bucket unless told, then shared.
* ``GET /api/shares``: the caller's shares; ``active`` is whether the link
  works now (not deactivated, expired or used up).
* ``DELETE /api/shares?id=`` deactivates (404 for an id that is not yours).

Public:

* ``GET /api/shares/download?code=`` (password in ``X-Share-Password`` or
  ``?password=``) and ``GET /s/{code}``.  ``/s/{code}`` answers a browser
  (an Accept header naming ``text/html``) with a page; with ``?download=1``,
  or for any other client (curl sends ``*/*``), it is the download itself.
  The page posts its password form back to ``POST /s/{code}``.
* An unknown code is 404; an expired, used-up or deactivated link, or one
  whose version is gone, is 410 ``ShareGone``, saying nothing of the object.
  A missing password is 401 ``PasswordRequired``, a wrong one 403
  ``InvalidPassword``; wrong passwords are limited per share and per client
  address, cluster-wide (429 with Retry-After).
* ``Range`` works; every response with bytes counts as one download.
"""

from __future__ import annotations

import posixpath
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import trio
from quart import Blueprint, Response, request

from protocols.rest import share_page
from protocols.rest.common import (
    ApiError,
    authenticate_api_key,
    check_rate,
    check_request_params,
    client_ip,
    from_storage,
    iso,
    json_response,
    read_json,
    refuse_nul,
    string_field,
    too_many_requests,
)
from protocols.rest.files import guess_type
from protocols.rest.session import COOKIE, SessionGate
from protocols.rest.transfer import (
    FIELD_LIMIT,
    attachment,
    opened_stream,
    parse_range,
    read_upload_form,
)
from storage import errors, events, names
from storage.accounts import AccountInfo
from storage.authz import AccessDenied, Action
from storage.buckets import BucketInfo
from storage.core import StorageCore
from storage.objects import ObjectInfo
from storage.ratelimit import RateLimiter
from storage.sessions import LoginAttempts
from storage.shares import EXPIRY, MAX_DOWNLOADS, ShareGone, ShareInfo, ShareService
from storage.signup import default_bucket

_GONE = "This share link has expired or is no longer available."


async def _from_shares() -> None:
    # Async, so it runs in the request's own task (see files._from_rest).
    events.set_origin("share")


def _gone() -> ApiError:
    return ApiError(410, "ShareGone", _GONE)


def _not_found() -> ApiError:
    return ApiError(404, "NotFound", "No share link has this code.")


def share_options(get: Callable[[str], Any]) -> tuple[str, str, int | None]:
    """``(password, expiresIn, maxDownloads)`` from a JSON body or form fields."""
    password = get("password") or ""
    if not isinstance(password, str) or len(password) > 1024:
        raise ApiError(400, "InvalidField", "password must be a string of at most 1024 "
                       "characters.")
    expires_in = get("expiresIn") or ""
    if expires_in not in ("", *EXPIRY):
        raise ApiError(400, "InvalidExpiry",
                       f"expiresIn must be one of {', '.join(EXPIRY)} (or absent: no expiry).")
    raw = get("maxDownloads")
    max_downloads: int | None = None
    if raw not in (None, ""):
        if isinstance(raw, str) and raw.isdigit():
            raw = int(raw)
        if not isinstance(raw, int) or isinstance(raw, bool) or not 1 <= raw <= MAX_DOWNLOADS:
            raise ApiError(400, "InvalidField",
                           f"maxDownloads must be an integer from 1 to {MAX_DOWNLOADS}.")
        max_downloads = raw
    return refuse_nul("password", password), expires_in, max_downloads


def describe(share: ShareInfo, url: str) -> dict[str, Any]:
    """A share as ``GET /api/shares`` lists it."""
    return {
        "id": share.id, "code": share.code, "url": url, "fileName": share.file_name,
        "fileSize": share.file_size, "bucket": share.bucket, "objectKey": share.key,
        "downloads": share.downloads, "maxDownloads": share.max_downloads,
        "expiresAt": iso(share.expires_at) if share.expires_at else None,
        "passwordProtected": share.has_password, "createdAt": iso(share.created_at),
        "active": share.is_live(),
    }


def _link(code: str) -> str:
    return f"{request.host_url.rstrip('/')}/s/{code}"


def wants_page() -> bool:
    """Whether ``/s/{code}`` should answer with the HTML page: a browser asked
    (Accept names text/html) and did not ask for the file (``?download=1``)."""
    if request.args.get("download", "") not in ("", "0"):
        return False
    return "text/html" in request.headers.get("Accept", "")


def create_shares_blueprint(services: StorageCore, gate: SessionGate) -> Blueprint:
    """The share routes over a node's services."""
    bp = Blueprint("shares", __name__)
    bp.before_request(check_request_params)
    bp.before_request(_from_shares)
    settings = services.settings
    shares = ShareService(services.db, services.events)
    downloads = RateLimiter(settings.accounts.rest_reads_per_second, 1.0)
    tries = settings.shares.password_attempts_per_minute
    share_attempts = LoginAttempts(services.db, tries, 60.0)
    address_attempts = LoginAttempts(services.db, tries * 10, 60.0)
    objects = services.objects

    async def caller() -> AccountInfo:
        # A session, or else an API key (an upload from a script).
        if not request.cookies.get(COOKIE) and (request.headers.get("X-API-Key")
                                                or request.headers.get("Authorization")):
            return (await authenticate_api_key(services.accounts)).account
        return await gate.account()

    async def readable(account: AccountInfo, name: str, action: Action) -> BucketInfo:
        try:
            if not name:
                return await default_bucket(services.buckets, account.id)
            return await services.authz.bucket(account.id, name, action)
        except AccessDenied:
            raise ApiError(403, "AccessDenied", "You do not have access to this bucket.") from None
        except errors.StorageError as exc:
            raise from_storage(exc) from None

    async def created(account: AccountInfo, bucket: BucketInfo, obj: ObjectInfo,
                      file_name: str, options: tuple[str, str, int | None]) -> Response:
        password, expires_in, max_downloads = options
        share = await shares.create(account.id, bucket, obj, file_name=file_name,
                                    password=password, expires_in=expires_in,
                                    max_downloads=max_downloads)
        return json_response({
            "id": share.id, "code": share.code, "url": _link(share.code),
            "expiresAt": iso(share.expires_at) if share.expires_at else None,
            "maxDownloads": share.max_downloads,
        }, 201)

    # -- management -------------------------------------------------------------

    @bp.post("/api/shares")
    async def create_share() -> Any:
        account = await caller()
        body = await read_json()
        bucket_name = string_field(body, "bucket", max_len=63)
        key = string_field(body, "objectKey", max_len=1024)
        file_name = string_field(body, "fileName", required=False, max_len=255)
        options = share_options(body.get)
        size = body.get("fileSize")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool)
                                 or size < 0):
            raise ApiError(400, "InvalidField", "fileSize must be a non-negative integer.")
        bucket = await readable(account, bucket_name, Action.READ)
        try:
            obj = await objects.head_object(bucket, names.check_key(key))
        except (errors.NoSuchKey, errors.NoSuchVersion):
            raise ApiError(404, "NotFound", "The object does not exist.") from None
        except errors.StorageError as exc:
            raise from_storage(exc) from None
        if size is not None and size != obj.size:
            raise ApiError(409, "SizeMismatch",
                           f"fileSize is {size}, but the object has {obj.size} bytes.")
        name = file_name or posixpath.basename(key) or "file"
        return await created(account, bucket, obj, name, options)

    @bp.post("/api/shares/upload")
    async def upload_share() -> Any:
        account = await caller()
        if request.mimetype != "multipart/form-data":
            raise ApiError(400, "InvalidMultipart", "Send the file as multipart/form-data.")
        form = await read_upload_form(
            request.mimetype_params.get("boundary", ""), objects.store_stream,
            max_upload=settings.accounts.rest_max_upload)
        options = share_options(form.fields.get)
        bucket = await readable(account, form.fields.get("bucket", ""), Action.WRITE)
        key = form.fields.get("key") or f"shares/{secrets.token_hex(8)}/{form.file_name}"
        try:
            obj = await objects.commit(bucket, names.check_key(key), form.stored,
                                       etag=form.stored.md5.hex(),
                                       content_type=guess_type(key, form.content_type))
        except errors.StorageError as exc:
            raise from_storage(exc) from None
        return await created(account, bucket, obj, form.file_name, options)

    @bp.get("/api/shares")
    async def list_shares() -> Any:
        account = await caller()
        found = await shares.list_for(account.id)
        return json_response({"shares": [describe(s, _link(s.code)) for s in found]})

    @bp.delete("/api/shares")
    async def delete_share() -> Any:
        account = await caller()
        share_id = request.args.get("id", "")
        if not share_id:
            raise ApiError(400, "MissingParameter", "Give the share's id as ?id=.")
        if len(share_id) > 40 or not await shares.deactivate(account.id, share_id):
            raise ApiError(404, "NotFound", "You have no share with this id.")
        return json_response({"success": True, "id": share_id, "active": False})

    # -- public downloads ---------------------------------------------------------

    async def check_password(share: ShareInfo, password: str | None) -> None:
        if not share.has_password:
            return
        if not password:
            raise ApiError(401, "PasswordRequired", "This share link needs its password.")
        # Counted (in the shared database) before the password is checked, so
        # concurrent guesses on several nodes cannot slip past together.
        wait = max(await share_attempts.attempt(f"share:{share.id}"),
                   await address_attempts.attempt(f"share-ip:{client_ip()}"))
        if wait > 0:
            raise too_many_requests(wait)
        # scrypt is deliberately slow: keep it off the event loop.
        if not await trio.to_thread.run_sync(share.password_ok, password):
            raise ApiError(403, "InvalidPassword", "The password is not correct.")
        await share_attempts.succeeded(f"share:{share.id}")

    async def source(share: ShareInfo) -> ObjectInfo:
        """The pinned version, if it and the owner's access to it still exist."""
        try:
            bucket = await services.buckets.get(share.bucket)
            if bucket.id != share.bucket_id:
                raise _gone()
            # The sharer may since have lost access (a team role removed).
            await services.authz.check(share.account_id, bucket, Action.READ)
            obj = await objects.head_object(bucket, share.key, share.version_id)
        except (errors.NoSuchBucket, errors.NoSuchKey, errors.NoSuchVersion, AccessDenied):
            raise _gone() from None
        if obj.is_delete_marker or obj.etag != share.etag:
            raise _gone()
        return obj

    async def download(code: str, password: str | None) -> Response:
        check_rate(downloads, client_ip())
        share = await shares.by_code(code)
        if share is None:
            raise _not_found()
        if not share.is_live():
            raise _gone()
        await check_password(share, password)
        obj = await source(share)
        headers = {
            "Content-Type": obj.content_type or "application/octet-stream",
            "ETag": f'"{obj.etag}"', "Accept-Ranges": "bytes",
            "Last-Modified": obj.last_modified.strftime("%a, %d %b %Y %H:%M:%S GMT"),
            "Content-Disposition": attachment(share.file_name),
            # Served from the dashboard's origin: never run it as a page.
            "Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer",
        }
        start, stop, status = 0, obj.size, 200
        rng = request.headers.get("Range", "").strip()
        if rng:
            parsed = parse_range(rng, obj.size)
            if parsed is None:
                raise ApiError(416, "InvalidRange", "The requested range is not satisfiable.",
                               {"Content-Range": f"bytes */{obj.size}"})
            start, stop = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{obj.size}"
        headers["Content-Length"] = str(stop - start)
        if request.method == "HEAD":  # looks, does not download
            # An (empty) streamed body, so the Content-Length above stands.
            return Response(_nothing(), status=status, headers=headers)
        try:
            await shares.claim_download(share, ranged=status == 206)
        except ShareGone:
            raise _gone() from None
        body = await opened_stream(objects.read_object(obj, start, stop), share.id)
        response = Response(body, status=status, headers=headers)
        response.timeout = None  # large downloads may take long
        return response

    def supplied_password() -> str | None:
        return request.headers.get("X-Share-Password") or request.args.get("password") or None

    @bp.get("/api/shares/download")
    async def public_download() -> Any:
        code = request.args.get("code", "")
        if not code:
            raise ApiError(400, "MissingParameter", "Give the share's code as ?code=.")
        return await download(code, supplied_password())

    @bp.get("/s/<code>")
    async def short_link(code: str) -> Any:
        if not wants_page():
            return await download(code, supplied_password())
        share = await shares.by_code(code)
        if share is None:
            return _page(share_page.gone_page("No share link has this address."), 404)
        if not share.is_live():
            return _page(share_page.gone_page(_GONE), 410)
        return _page(share_page.share_page(share.code, share.file_name, share.file_size,
                                           needs_password=share.has_password))

    @bp.post("/s/<code>")
    async def short_link_form(code: str) -> Any:
        # The page's password form: the answer is the file, or the page again.
        if request.content_length is None:
            raise ApiError(411, "LengthRequired", "The form needs a Content-Length.")
        if request.content_length > FIELD_LIMIT:
            raise ApiError(413, "PayloadTooLarge", f"The form exceeds {FIELD_LIMIT} bytes.")
        form = await request.form
        password = refuse_nul("password", form.get("password", ""))
        try:
            return await download(code, password)
        except ApiError as exc:
            if exc.status not in (401, 403, 429):
                return _page(share_page.gone_page(exc.message), exc.status)
            share = await shares.by_code(code)
            if share is None:
                return _page(share_page.gone_page(_GONE), 410)
            page = share_page.share_page(share.code, share.file_name, share.file_size,
                                         needs_password=True, error=exc.message)
            return _page(page, exc.status, exc.headers)

    return bp


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # an async generator that yields nothing


def _page(html: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(html, status=status, content_type="text/html; charset=utf-8", headers={
        "Content-Security-Policy": share_page.CSP, "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer", "Cache-Control": "no-store", **(headers or {}),
    })
