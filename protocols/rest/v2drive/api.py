"""The shared part of the v2-drive endpoints: admission, the caller's drive,
the JSON shapes of files and folders, request parsing.

Each endpoint is a method of a subclass (files.py, folders.py, users.py,
audit.py) taking the admitted :class:`Caller`; :meth:`DriveApi.serve` admits
the request and turns every failure into this dialect's error format.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import AsyncIterable, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from quart import Response, request
from quart.wrappers.response import ResponseBody

from protocols.rest.common import ApiError, check_request_params, read_json
from protocols.rest.v2drive.auth import Caller, Gate
from protocols.rest.v2drive.errors import (
    DriveError,
    error_response,
    from_storage,
    invalid,
    request_id,
)
from protocols.rest.v2drive.links import Signer
from storage import errors, events
from storage.authz import Action
from storage.concurrency import Slot
from storage.core import StorageCore
from storage.drive import ROOT_ID, SANDBOX, Drive, FolderRow, Scope, aware
from storage.drive_keys import DriveKeyService
from storage.object_types import ObjectInfo
from storage.rate_windows import RateWindows
from storage.search import SearchIndex
from storage.signup import default_bucket

log = logging.getLogger(__name__)
Handler = Callable[[Caller], Awaitable[Response]]
WRITE_SCOPES = frozenset({"files.write", "teams.write", "webhooks.write"})


def iso(ts: datetime | None) -> str | None:
    """``2024-06-19T10:30:00Z``, as the document shows timestamps."""
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(name: str, raw: str | None) -> datetime | None:
    """An ISO 8601 query parameter; 400 if it is not one."""
    if raw is None or raw == "":
        return None
    try:
        when = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"{name} must be an ISO 8601 datetime.") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def string(body: dict[str, Any], name: str, *, required: bool = False,
           max_len: int = 1024) -> str | None:
    """A string field of a JSON body; 400 if it has another type."""
    value = body.get(name)
    if value is None:
        if required:
            raise invalid(f"The field '{name}' is required.")
        return None
    if not isinstance(value, str) or "\x00" in value or len(value) > max_len:
        raise invalid(f"'{name}' must be a string of at most {max_len} characters.")
    return value


def from_api_error(exc: ApiError) -> DriveError:
    """An error of a shared REST helper in this format, by its status."""
    if exc.status >= 500:
        if exc.status == 503:
            return DriveError(503, "service_unavailable", exc.message, exc.headers)
        return DriveError(500, "internal_error", exc.message)
    if exc.status == 429:
        return DriveError(429, "rate_limit_exceeded", exc.message, exc.headers)
    return invalid(exc.message)  # 400, and 413 (a body over its cap): no row of its own


def _status(row: dict, info: ObjectInfo | None) -> str:
    """``active``, ``pending_upload``, or ``upload_expired`` once its URL ran out."""
    status = str(row.get("status") or "active")
    if status == "pending_upload" and info is None:
        expires = aware(row.get("upload_expires_at"))
        if expires is not None and expires < datetime.now(UTC):
            return "upload_expired"
    return "active" if info is not None and status == "pending_upload" else status


class HeldBody(ResponseBody):
    """A response body that releases a concurrent-request slot once sent.

    Quart sends a body as ``async with body as it: async for data in it``,
    so the exit runs when the last byte went out, when sending failed and
    when the client went away (the request's task is cancelled).  A body
    never sent releases its slot when collected (storage/concurrency.py)."""

    def __init__(self, inner: ResponseBody, slot: Slot) -> None:
        self.inner = inner
        self.slot = slot

    async def __aenter__(self) -> AsyncIterable[Any]:
        return await self.inner.__aenter__()

    async def __aexit__(self, exc_type: Any, exc_value: Any, tb: Any) -> None:
        try:
            await self.inner.__aexit__(exc_type, exc_value, tb)
        finally:
            self.slot.release()


class DriveApi:
    """Admission and shared shapes of the v2-drive endpoints."""

    def __init__(self, services: StorageCore) -> None:
        self.services = services
        self.objects = services.objects
        self.keys = DriveKeyService(services.db, events_bus=services.events)
        limits = services.settings.v2drive
        self.gate = Gate(self.keys, RateWindows(services.db), concurrent={
            "free": limits.concurrent_free, "pro": limits.concurrent_pro,
            "business": limits.concurrent_business})
        self.drive = Drive(services.db, services.objects)
        self.index = SearchIndex(services.db, services.objects, services.buckets)
        self.signer = Signer(services.settings.cluster_secret())
        self.max_upload = services.settings.accounts.rest_max_upload

    async def serve(self, scope: str | None, handler: Handler) -> Response:
        """Admit the request, run ``handler``, answer in this dialect's format.

        The caller's concurrent-request slot is held until the answer's last
        byte is sent (or the client goes away)."""
        req_id = request_id()
        headers: dict[str, str] = {}
        events.set_origin("v2drive")
        slot: Slot | None = None
        try:
            try:
                check_request_params()
            except ApiError as exc:
                raise invalid(exc.message) from None
            caller, headers = await self.gate.admit(scope)
            slot = self.gate.hold(caller, headers)
            response = await handler(caller)
        except DriveError as exc:
            response = error_response(exc, req_id)
        except errors.StorageError as exc:
            mapped = from_storage(exc)
            if mapped.status >= 500 and mapped.status != 503:
                log.exception("v2-drive storage error")
            response = error_response(mapped, req_id)
        except ApiError as exc:  # shared helpers (JSON reader, transfer): keep their status
            response = error_response(from_api_error(exc), req_id)
        except Exception:
            log.exception("v2-drive request failed")
            response = error_response(
                DriveError(500, "internal_error", "Something went wrong on our end."), req_id)
        except BaseException:  # cancelled: no answer will be sent
            if slot is not None:
                slot.release()
            raise
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("X-Request-Id", req_id)
        if slot is not None:
            response.response = HeldBody(response.response, slot)
        return response

    async def scope(self, caller: Caller, action: Action = Action.READ) -> Scope:
        """The caller's drive: its default bucket, or the sandbox folder of it."""
        home = await default_bucket(self.services.buckets, caller.account.id)
        # The one authorization function decides, even for the caller's own bucket.
        bucket = await self.services.authz.bucket(caller.account.id, home.name, action)
        await self.index.enroll(bucket)  # search indexes only the buckets drives use
        return Scope(caller.account.id, bucket, SANDBOX if caller.sandbox else "")

    async def body(self) -> dict[str, Any]:
        """The JSON object of the request."""
        body = await read_json()
        if not isinstance(body, dict):
            raise invalid("The request body must be a JSON object.")
        return body

    # -- shapes ---------------------------------------------------------------------

    async def folder_ids(self, scope: Scope, paths: list[str]) -> dict[str, FolderRow]:
        """Folder rows of ``paths`` (drive paths, "" for the root)."""
        return await self.drive.folder_rows(scope, paths)

    def describe_folder(self, folder: FolderRow, parent_id: str | None,
                        item_count: int | None = None) -> dict[str, Any]:
        """A folder as the document shows one."""
        out: dict[str, Any] = {
            "id": folder.id, "name": folder.name or "/", "parent_folder_id": parent_id,
            "path": "/" + folder.path.rstrip("/"), "color": folder.color or None,
            "created_at": iso(folder.created_at),
        }
        if item_count is not None:
            out["item_count"] = item_count
        return out

    def describe_file(self, scope: Scope, row: dict, info: ObjectInfo | None,
                      parent_id: str) -> dict[str, Any]:
        """A file as the document shows one (``info`` None: not uploaded yet)."""
        key = row["key"]
        created = aware(row.get("created_at"))
        return {
            "id": row["id"], "name": posixpath.basename(key),
            "mime_type": (info.content_type if info else row.get("mime_type")) or None,
            "size": info.size if info else (row.get("expected_size") or 0),
            "checksum_sha256": row.get("checksum_sha256") or None,
            "parent_folder_id": parent_id, "owner_id": scope.account_id,
            "created_at": iso(created),
            "updated_at": iso(info.last_modified if info else aware(row.get("updated_at"))),
            "version": (info.version_number or 1) if info else 0,
            "download_url": (self.signer.download_url(request.host_url.rstrip("/"), row["id"])
                             if info else None),
            "shared": False,
            "tags": sorted(k if not v else f"{k}:{v}" for k, v in (info.tags if info else {})
                           .items()),
            "status": _status(row, info),
        }

    async def parent_id(self, scope: Scope, key: str) -> str:
        """The id of the folder holding a key."""
        parent = posixpath.dirname(scope.path(key))
        path = parent + "/" if parent else ""
        return (await self.folder_ids(scope, [path]))[path].id if path else ROOT_ID
