"""The v1-pro endpoints (seed 002) over the shared storage core.

Files live in the account's default bucket (its oldest): ``path`` is a
folder of it (see :mod:`folders`).  Each endpoint is a method of
:class:`V1ProApi` taking the admitted :class:`Caller`; :meth:`V1ProApi.serve`
admits the request (auth.py) and turns every failure into this dialect's
error format.  The routes themselves are in routes.py.
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from quart import Response, request

from protocols.rest.common import ApiError, check_request_params, read_json
from protocols.rest.files import file_id, guess_type, parse_file_id
from protocols.rest.transfer import drain_body, parse_range
from protocols.rest.v1pro import folders
from protocols.rest.v1pro.auth import Caller, Gate
from protocols.rest.v1pro.errors import (
    ProError,
    error_response,
    from_storage,
    invalid,
    not_found,
    ok,
)
from protocols.rest.v1pro.links import LinkSigner
from storage import errors, events, outbound
from storage.api_keys import ApiKeyService
from storage.buckets import BucketInfo
from storage.core import StorageCore
from storage.imports import COMPLETED, FAILED, ImportTasks
from storage.rate_windows import RateWindows
from storage.signup import default_bucket

log = logging.getLogger(__name__)
Handler = Callable[[Caller], Awaitable[Response]]

# Hosts whose pages are videos, not files ("type": "auto" detects them).
VIDEO_HOSTS = ("youtube.com", "youtu.be", "vimeo.com", "dailymotion.com", "twitch.tv",
               "tiktok.com", "instagram.com", "facebook.com", "x.com", "twitter.com")


def iso(ts: datetime | None) -> str | None:
    """``2026-06-25T10:00:00+00:00``, as the document shows timestamps."""
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat(timespec="seconds")


def is_video_url(url: str) -> bool:
    """Whether ``url`` is a page of a known video site."""
    host = (urlsplit(url).hostname or "").lower()
    return any(host == h or host.endswith("." + h) for h in VIDEO_HOSTS)


def _string(body: dict[str, Any], name: str, default: str = "") -> str:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str) or "\x00" in value or len(value) > 2048:
        raise invalid(f"'{name}' must be a string.")
    return value


class V1ProApi:
    """The v1-pro endpoints over a node's storage core."""

    def __init__(self, services: StorageCore) -> None:
        settings = services.settings
        cfg = settings.v1pro
        self.services = services
        self.objects = services.objects
        keys = ApiKeyService(services.db, max_keys=cfg.max_keys, events_bus=services.events)
        self.gate = Gate(keys, RateWindows(services.db), enabled=cfg.enabled,
                         per_minute=cfg.requests_per_minute)
        self.signer = LinkSigner(settings.cluster_secret(), cfg.link_ttl_seconds)
        self.tasks = ImportTasks(services.db)
        self.policy = outbound.OutboundPolicy.from_settings(settings)
        self.max_upload = settings.accounts.rest_max_upload

    async def serve(self, scope: str | None, handler: Handler) -> Response:
        """Admit the request, run ``handler``, answer in this dialect's format."""
        headers: dict[str, str] = {}
        events.set_origin("v1pro")
        try:
            try:
                check_request_params()
            except ApiError as exc:
                raise invalid(exc.message) from None
            caller, headers = await self.gate.admit(scope)
            response = await handler(caller)
        except ProError as exc:
            response = error_response(exc)
        except errors.StorageError as exc:
            response = error_response(from_storage(exc))
        except ApiError as exc:  # the shared JSON-body reader
            response = error_response(ProError(413, "payload_too_large", exc.message)
                                      if exc.status == 413 else invalid(exc.message))
        except Exception:
            log.exception("v1-pro request failed")
            response = error_response(
                ProError(500, "server_error", "An unexpected server error occurred."))
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response

    async def home(self, caller: Caller) -> BucketInfo:
        """The caller's default bucket, where v1-pro paths live."""
        return await default_bucket(self.services.buckets, caller.account.id)

    def link(self, bucket: str, key: str) -> str:
        """The signed, keyless URL of ``bucket/key`` on this node."""
        return self.signer.link(request.host_url, file_id(bucket, key), key)

    # -- who am I ----------------------------------------------------------------

    async def me(self, caller: Caller) -> Response:
        """GET /api/v1/me: the key, its window and the account's limits."""
        k, w = caller.key, caller.window
        return ok({
            "username": caller.account.email, "plan": caller.account.plan,
            "key": {"id": k.id, "name": k.name, "scopes": list(k.scopes),
                    "key_prefix": k.key_prefix, "key_last4": k.key_last4,
                    "created_at": iso(k.created_at), "expires_at": iso(k.expires_at)},
            "rate_limit": {"limit": w.limit, "remaining": w.remaining, "reset": w.reset,
                           "window_seconds": w.window},
            "limits": {"upload_max_bytes": self.max_upload},
        })

    # -- upload ------------------------------------------------------------------

    async def capped(self) -> AsyncIterator[bytes]:
        """The request body, refused (413) past the upload limit."""
        total = 0
        async for piece in request.body:
            total += len(piece)
            if total > self.max_upload:
                raise ProError(413, "payload_too_large",
                               f"Uploads are limited to {self.max_upload} bytes.")
            if piece:
                yield piece

    async def upload(self, caller: Caller) -> Response:
        """POST /api/v1/upload: the raw body, streamed into ``path/filename``."""
        filename = request.args.get("filename", "")
        if not filename:
            raise invalid("The query parameter 'filename' is required.")
        folder = folders.folder_of(request.args.get("path"))
        key = folders.key_in(folder, filename)
        length = request.content_length
        if length is not None and length > self.max_upload:
            raise ProError(413, "payload_too_large",
                           f"Uploads are limited to {self.max_upload} bytes.",
                           {} if await drain_body() else {"Connection": "close"})
        bucket = await self.home(caller)
        info = await self.objects.put_object(
            bucket, key, self.capped(),
            content_type=guess_type(filename, request.headers.get("Content-Type", "")),
            expected_size=length)
        return ok({"tracking_id": f"{time.time_ns() // 1000}", "file_name": filename,
                   "size": info.size, "link": self.link(bucket.name, key),
                   "folder": folder})

    # -- imports -----------------------------------------------------------------

    async def start_import(self, caller: Caller) -> Response:
        """POST /api/v1/import: a file import task (video: feature_disabled)."""
        body = await read_json()
        url = _string(body, "url")
        kind = _string(body, "type", "auto") or "auto"
        if not url:
            raise invalid("The field 'url' is required.")
        if kind not in ("auto", "file", "video"):
            raise invalid("'type' must be auto, file or video.")
        if kind == "video" or (kind == "auto" and is_video_url(url)):
            # No video extractor ships with the cluster (see README).
            raise ProError(503, "feature_disabled",
                           "Video imports need a video extractor, which is not installed "
                           "on this cluster.")
        try:
            target = await outbound.check_url(url, self.policy)
        except outbound.OutboundRefused as exc:
            raise invalid(exc.message) from None
        folder = folders.folder_of(_string(body, "path", "/"))
        name = _string(body, "filename") or posixpath.basename(
            unquote(urlsplit(target.url).path)) or "download"
        key = folders.key_in(folder, name)
        bucket = await self.home(caller)
        task_id = await self.tasks.create(caller.account.id, "file", url, bucket.name, key)
        return ok({"type": "file", "task_id": task_id})

    async def import_status(self, caller: Caller) -> Response:
        """GET /api/v1/import/status: the task's state and progress."""
        task_id = request.args.get("task_id", "")
        if not task_id:
            raise invalid("The query parameter 'task_id' is required.")
        task = await self.tasks.get(caller.account.id, task_id[:64])
        if task is None:
            raise not_found("No import task has this id.")
        out: dict[str, Any] = {"id": task.id, "type": task.type, "state": task.state,
                               "progress": task.progress()}
        if task.state == COMPLETED:
            out["link"] = self.link(task.bucket, task.key)
        if task.state == FAILED:
            out["error"] = task.error
        return ok({"task": out})

    async def cancel_import(self, caller: Caller) -> Response:
        """POST /api/v1/import/cancel: stop a running task."""
        task_id = _string(await read_json(), "task_id")
        if not task_id:
            raise invalid("The field 'task_id' is required.")
        if await self.tasks.cancel(caller.account.id, task_id[:64]) is None:
            raise not_found("No import task has this id.")
        return ok({})

    # -- listing -----------------------------------------------------------------

    async def list_files(self, caller: Caller) -> Response:
        """GET /api/v1/files: a folder's files, 50 a page, subfolders first."""
        folder = folders.folder_of(request.args.get("path"))
        raw = request.args.get("offset", "0") or "0"
        if not raw.isdigit() or len(raw) > 9:
            raise invalid("offset must be a non-negative integer.")
        offset = int(raw)
        bucket = await self.home(caller)
        subfolders, files, more = await folders.page(self.objects, bucket, folder, offset)
        return ok({
            "path": folder, "folders": subfolders,
            "files": [{"name": posixpath.basename(e.key), "size": e.size,
                       "link": self.link(bucket.name, e.key), "uploaded_at": iso(e.last_modified)}
                      for e in files],
            "limit": folders.PAGE, "next_offset": offset + len(files), "has_more": more,
        })

    async def folder_tree(self, caller: Caller) -> Response:
        """GET /api/v1/folders: the whole folder tree."""
        return ok({"tree": await folders.tree(self.objects, await self.home(caller))})

    # -- links ---------------------------------------------------------------------

    async def download(self, fid: str) -> Response:
        """Stream the file a signed link names (no key), honouring Range."""
        try:
            if not self.signer.valid(fid, request.args.get("expires", ""),
                                     request.args.get("signature", "")):
                raise not_found("This link is invalid or has expired.")
            try:
                bucket_name, key = parse_file_id(fid)
            except ApiError:
                raise not_found("No file has this link.") from None
            bucket = await self.services.buckets.get(bucket_name)
            info = await self.objects.head_object(bucket, key)
            if info.is_delete_marker:
                raise not_found("No file has this link.")
        except ProError as exc:
            return error_response(exc)
        except errors.StorageError as exc:
            return error_response(from_storage(exc))
        headers = {"Content-Type": info.content_type or "application/octet-stream",
                   "ETag": f'"{info.etag}"', "Accept-Ranges": "bytes"}
        # Streamable: players seek with Range, as on the Simple REST API.
        start, stop, status = 0, info.size, 200
        wanted = request.headers.get("Range", "").replace(" ", "")
        if wanted:
            parsed = parse_range(wanted, info.size)
            if parsed is None:
                return error_response(ProError(
                    416, "invalid_request", "The requested range is not satisfiable.",
                    {"Content-Range": f"bytes */{info.size}"}))
            (start, stop), status = parsed, 206
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{info.size}"
        headers["Content-Length"] = str(stop - start)
        response = Response(self.objects.read_object(info, start, stop), status=status,
                            headers=headers)
        response.timeout = None  # large files stream for long
        return response
