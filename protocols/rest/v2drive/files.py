"""v2-drive files: presigned uploads, metadata, listing, replace, download,
rename/move, custom metadata.

``POST /v2/files`` makes a ``pending_upload`` file row and a presigned URL;
the bytes go to that URL (``PUT``) within 15 minutes and land at the key
``<folder path>/<name>`` of the caller's drive, through the core's object
service like any other upload.  ``PUT /v2/files/:id`` replaces the content
(a new version).  Custom metadata (``{template, fields}``) is kept on the
file's id row, so it follows the file through moves.
"""

from __future__ import annotations

import hashlib
import posixpath
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from quart import Response, request

from protocols.rest.common import ApiError
from protocols.rest.files import guess_type
from protocols.rest.transfer import attachment, drain_body, opened_stream
from protocols.rest.v2drive import pagination
from protocols.rest.v2drive.api import DriveApi, from_api_error, parse_time, string
from protocols.rest.v2drive.auth import Caller
from protocols.rest.v2drive.errors import (
    DriveError,
    error_response,
    from_storage,
    invalid,
    json_answer,
    not_found,
    request_id,
)
from protocols.rest.v2drive.links import UPLOAD_TTL
from storage import errors, events
from storage.authz import Action
from storage.drive import ROOT_ID, Scope, check_name, fetch_rows
from storage.object_types import ObjectInfo

MAX_TEMPLATES = 50
MAX_FIELDS = 200
SORTS = ("name", "size", "modified_at")


class FilesApi(DriveApi):
    """The ``/v2/files`` endpoints."""

    async def _info(self, scope: Scope, key: str) -> ObjectInfo | None:
        try:
            info = await self.objects.head_object(scope.bucket, key)
        except (errors.NoSuchKey, errors.NoSuchVersion):
            return None
        return None if info.is_delete_marker else info

    async def _file(self, scope: Scope, file_id: str) -> tuple[dict, ObjectInfo | None]:
        """The row and current version of a file; 404 if neither exists."""
        row = await self.drive.file(scope, file_id)
        if row["status"] == "trashed":
            raise not_found(f"The file with ID '{file_id}' was not found.")
        info = await self._info(scope, row["key"])
        if info is None and row["status"] != "pending_upload":
            raise not_found(f"The file with ID '{file_id}' was not found.")
        return row, info

    async def _described(self, scope: Scope, file_id: str) -> dict[str, Any]:
        row, info = await self._file(scope, file_id)
        return self.describe_file(scope, row, info, await self.parent_id(scope, row["key"]))

    def _capped(self, declared: int | None, digest: Any) -> AsyncIterator[bytes]:
        limit = self.max_upload

        async def gen() -> AsyncIterator[bytes]:
            total = 0
            async for piece in request.body:
                total += len(piece)
                if total > limit or (declared is not None and total > declared):
                    raise invalid(f"The upload is larger than {declared or limit} bytes.")
                digest.update(piece)
                if piece:
                    yield piece

        return gen()

    # -- endpoints ------------------------------------------------------------------

    async def create(self, caller: Caller) -> Response:
        """POST /v2/files: a pending file and its presigned upload URL (201)."""
        body = await self.body()
        name = check_name(string(body, "name", required=True, max_len=255))
        mime = string(body, "mime_type", max_len=255) or guess_type(name, "")
        size = body.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool)
                                 or size < 0 or size > self.max_upload):
            raise invalid(f"'size' must be an integer from 0 to {self.max_upload}.")
        checksum = (string(body, "checksum_sha256", max_len=64) or "").lower()
        if checksum and (len(checksum) != 64 or set(checksum) - set("0123456789abcdef")):
            raise invalid("'checksum_sha256' must be 64 hex digits.")
        scope = await self.scope(caller, Action.WRITE)
        folder = await self.drive.folder(scope, string(body, "parent_folder_id"))
        key = scope.key(folder.path + name)
        expires = int(time.time()) + UPLOAD_TTL
        rows = await self.drive.file_rows(scope, [key])
        row = rows[key]
        await self.drive.update_file(
            scope, row["id"], status="pending_upload", mime_type=mime, expected_size=size,
            checksum_sha256=checksum,
            upload_expires_at=datetime.fromtimestamp(expires, UTC),
            updated_at=datetime.now(UTC).replace(microsecond=0))
        url = self.signer.upload_url(request.host_url.rstrip("/"), row["id"], expires)
        return json_answer({"id": row["id"], "upload_url": url,
                            "upload_expires_at": datetime.fromtimestamp(expires, UTC)
                            .strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "status": "pending_upload"}, 201)

    async def presigned_upload(self, file_id: str) -> Response:
        """PUT /v2/presigned/:id: the bytes of a pending file (no key: the URL is signed)."""
        req_id = request_id()
        events.set_origin("v2drive")
        try:
            if not self.signer.valid("upload", file_id, request.args.get("expires", ""),
                                     request.args.get("sig", "")):
                raise DriveError(403, "forbidden", "This upload URL is invalid or has expired.")
            found = await self._pending(file_id)
            if found is None:
                raise not_found(f"The file with ID '{file_id}' was not found.")
            scope, row = found
            digest = hashlib.sha256()
            info = await self.objects.put_object(
                scope.bucket, row["key"], self._capped(row["expected_size"], digest),
                content_type=row["mime_type"] or "application/octet-stream",
                expected_size=row["expected_size"])
            if row["checksum_sha256"] and digest.hexdigest() != row["checksum_sha256"]:
                await self.objects.delete_object(scope.bucket, row["key"])
                raise invalid("The uploaded bytes do not match checksum_sha256.")
            await self.drive.update_file(scope, file_id, status="active",
                                         checksum_sha256=digest.hexdigest(),
                                         upload_expires_at=None,
                                         updated_at=datetime.now(UTC).replace(microsecond=0))
            row = await self.drive.file(scope, file_id)
            parent = await self.parent_id(scope, row["key"])
            return json_answer(self.describe_file(scope, row, info, parent))
        except DriveError as exc:
            return error_response(exc, req_id)
        except errors.IncompleteBody as exc:
            return error_response(invalid(exc.message), req_id)
        except errors.StorageError as exc:
            return error_response(from_storage(exc), req_id)

    async def _pending(self, file_id: str) -> tuple[Scope, dict] | None:
        """The scope and row of a pending file, found by id alone."""
        rows = await fetch_rows(self.services.db, "SELECT * FROM drive_files WHERE id = ? "
                                "AND status = ?", (file_id, "pending_upload"))
        if not rows:
            return None
        row = rows[0]
        bucket = await self.services.authz.bucket(row["account_id"], row["bucket"], Action.WRITE)
        return Scope(row["account_id"], bucket), row

    async def get(self, caller: Caller, file_id: str) -> Response:
        """GET /v2/files/:id."""
        scope = await self.scope(caller)
        return json_answer(await self._described(scope, file_id))

    async def list_files(self, caller: Caller) -> Response:
        """GET /v2/files: filters folder_id, mime_type, modified_after; sort_by."""
        sort = request.args.get("sort_by", "modified_at") or "modified_at"
        if sort not in SORTS:
            raise invalid(f"sort_by must be one of {', '.join(SORTS)}.")
        after = parse_time("modified_after", request.args.get("modified_after"))
        mime = request.args.get("mime_type")
        pagination.limit_param()  # 400 before any work
        pagination.offset_param()
        scope = await self.scope(caller)
        folder_id = request.args.get("folder_id")
        if folder_id:
            folder = await self.drive.folder(scope, folder_id)
            _, entries = await self.drive.children(scope, folder.path)
        else:
            entries = [e for e in await self._all_entries(scope)]
        entries = [e for e in entries if (not mime or e.content_type == mime)
                   and (after is None or e.last_modified > after)]
        if sort == "name":
            entries.sort(key=lambda e: (posixpath.basename(e.key).lower(), e.key))
        elif sort == "size":
            entries.sort(key=lambda e: (-e.size, e.key))
        else:
            entries.sort(key=lambda e: (e.last_modified, e.key), reverse=True)
        out = pagination.page(entries)
        rows = await self.drive.file_rows(scope, [e.key for e in out["data"]])
        out["data"] = [await self._listed(scope, rows[e.key], e) for e in out["data"]]
        return json_answer(out)

    async def _all_entries(self, scope: Scope) -> list[Any]:
        entries = []
        for key_entry in await self._walk(scope):
            if not key_entry.key.endswith("/") and not scope.hidden(scope.path(key_entry.key)):
                entries.append(key_entry)
        return entries

    async def _walk(self, scope: Scope) -> list[Any]:
        prefix, marker, out = scope.key(""), "", []
        while True:
            page = await self.objects.list_objects(scope.bucket, prefix=prefix, marker=marker,
                                                   max_keys=1000)
            out += page.entries
            if not page.is_truncated or not page.next_marker:
                return out
            marker = page.next_marker

    async def _listed(self, scope: Scope, row: dict, entry: Any) -> dict[str, Any]:
        info = ObjectInfo(bucket=scope.bucket.name, key=entry.key, version_id=entry.version_id,
                          size=entry.size, etag=entry.etag, content_type=entry.content_type,
                          last_modified=entry.last_modified)
        return self.describe_file(scope, row, info, await self.parent_id(scope, entry.key))

    async def replace(self, caller: Caller, file_id: str) -> Response:
        """PUT /v2/files/:id: new content, a new version."""
        scope = await self.scope(caller, Action.WRITE)
        row, _ = await self._file(scope, file_id)
        length = request.content_length
        if length is not None and length > self.max_upload:
            await drain_body()
            raise invalid(f"Uploads are limited to {self.max_upload} bytes.")
        digest = hashlib.sha256()
        info = await self.objects.put_object(
            scope.bucket, row["key"], self._capped(None, digest),
            content_type=guess_type(row["key"], request.headers.get("Content-Type", "")),
            expected_size=length)
        await self.drive.update_file(scope, file_id, status="active",
                                     checksum_sha256=digest.hexdigest(),
                                     updated_at=datetime.now(UTC).replace(microsecond=0))
        row = await self.drive.file(scope, file_id)
        return json_answer(self.describe_file(scope, row, info,
                                              await self.parent_id(scope, row["key"])))

    async def update(self, caller: Caller, file_id: str) -> Response:
        """PATCH /v2/files/:id: ``name`` (rename), ``parent_folder_id`` (move), ``tags``."""
        body = await self.body()
        scope = await self.scope(caller, Action.WRITE)
        row, info = await self._file(scope, file_id)
        if info is None:
            raise invalid("The file has not been uploaded yet.")
        name = string(body, "name", max_len=255)
        parent = body.get("parent_folder_id")
        tags = body.get("tags")
        if tags is not None and (not isinstance(tags, list) or len(tags) > 10 or not all(
                isinstance(t, str) and 0 < len(t) <= 128 for t in tags)):
            raise invalid("'tags' must be a list of at most 10 strings.")
        key = row["key"]
        if name is not None or parent is not None:
            folder_path = posixpath.dirname(scope.path(key))
            folder_path = folder_path + "/" if folder_path else ""
            if parent is not None:
                if not isinstance(parent, str):
                    raise invalid("'parent_folder_id' must be a folder id.")
                folder_path = (await self.drive.folder(scope, parent)).path
            new_key = scope.key(folder_path + check_name(name or posixpath.basename(key)))
            await self.drive.move_file(scope, key, new_key)
            key = new_key
        if tags is not None:
            current = await self.objects.head_object(scope.bucket, key)
            split = dict(t.split(":", 1) if ":" in t else (t, "") for t in tags)
            await self.objects.set_tags(scope.bucket, key, current.version_id, split)
            await self.index.refresh(scope.bucket, key)  # tags change records no event
        return json_answer(await self._described(scope, file_id))

    async def download(self, caller: Caller, file_id: str) -> Response:
        """GET /v2/files/:id/download: the bytes."""
        scope = await self.scope(caller)
        _, info = await self._file(scope, file_id)
        if info is None:
            raise not_found("The file has not been uploaded yet.")
        return await self._stream(info)

    async def signed_download(self, file_id: str) -> Response:
        """GET /v2/dl/:id: the bytes, by a signed ``download_url``."""
        req_id = request_id()
        try:
            if not self.signer.valid("download", file_id, request.args.get("expires", ""),
                                     request.args.get("token", "")):
                raise DriveError(403, "forbidden", "This download URL is invalid or has expired.")

            rows = await fetch_rows(self.services.db, "SELECT * FROM drive_files WHERE id = ?",
                                    (file_id,))
            if not rows or rows[0]["status"] == "trashed":
                raise not_found(f"The file with ID '{file_id}' was not found.")
            bucket = await self.services.buckets.get(rows[0]["bucket"])
            info = await self._info(Scope(rows[0]["account_id"], bucket), rows[0]["key"])
            if info is None:
                raise not_found(f"The file with ID '{file_id}' was not found.")
            return await self._stream(info)
        except DriveError as exc:
            return error_response(exc, req_id)
        except errors.StorageError as exc:
            return error_response(from_storage(exc), req_id)
        except ApiError as exc:  # the stream's first piece could not be read
            return error_response(from_api_error(exc), req_id)

    async def _stream(self, info: ObjectInfo) -> Response:
        # The first piece is fetched before the status: lost chunks answer an error.
        body = await opened_stream(self.objects.read_object(info), info.key)
        return Response(body, status=200, headers={
            "Content-Type": info.content_type or "application/octet-stream",
            "Content-Length": str(info.size), "ETag": f'"{info.etag}"',
            "Content-Disposition": attachment(info.key)})

    # -- custom metadata ----------------------------------------------------------

    async def set_metadata(self, caller: Caller, file_id: str) -> Response:
        """POST|PUT /v2/files/:id/metadata ``{template, fields}``."""
        body = await self.body()
        template = string(body, "template", required=True, max_len=128)
        fields = body.get("fields")
        if not isinstance(fields, dict) or not fields or len(fields) > MAX_FIELDS:
            raise invalid(f"'fields' must be an object of 1 to {MAX_FIELDS} fields.")
        for k, v in fields.items():
            if not k or len(k) > 128 or not isinstance(v, str | int | float | bool) \
                    or len(str(v)) > 1024:
                raise invalid("Each field must be a name and a scalar value "
                              "(at most 1024 characters).")
        scope = await self.scope(caller, Action.WRITE)
        row, _ = await self._file(scope, file_id)
        metadata = dict(_json(row.get("metadata")))
        if template not in metadata and len(metadata) >= MAX_TEMPLATES:
            raise invalid(f"A file holds at most {MAX_TEMPLATES} metadata templates.")
        metadata[template] = fields
        await self.drive.update_file(scope, file_id, metadata=metadata,
                                     updated_at=datetime.now(UTC).replace(microsecond=0))
        # Custom metadata is v2-drive's own (no event): index it now.
        await self.index.refresh(scope.bucket, row["key"], metadata)
        return json_answer(_metadata(file_id, metadata))

    async def get_metadata(self, caller: Caller, file_id: str) -> Response:
        """GET /v2/files/:id/metadata."""
        scope = await self.scope(caller)
        row, _ = await self._file(scope, file_id)
        return json_answer(_metadata(file_id, _json(row.get("metadata"))))


def _json(value: Any) -> dict:
    import json

    if isinstance(value, str | bytes):
        value = json.loads(value or "{}")
    return value if isinstance(value, dict) else {}


def _metadata(file_id: str, metadata: dict) -> dict[str, Any]:
    return {"file_id": file_id,
            "data": [{"template": t, "fields": f} for t, f in sorted(metadata.items())]}


__all__ = ["ROOT_ID", "FilesApi"]
