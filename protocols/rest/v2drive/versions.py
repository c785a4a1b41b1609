"""v2-drive file versions (seed 004) over Time Machine (storage/versions.py).

``GET /v2/files/:id/versions`` lists a file's versions newest first (every
overwrite through any protocol keeps the previous one, within the account's
retention); ``POST /v2/files/:id/versions/:version_id/restore`` makes a
copy of one the new current version.  ``version_id`` is Time Machine's
``ver_<n>``, the same id ``/api/versions`` shows.  The core records no
uploader per version, so ``uploaded_by`` is the file's owner; only the
current version has a ``checksum_sha256`` (when v2-drive received it).
"""

from __future__ import annotations

from typing import Any

from quart import Response

from protocols.rest.v2drive import pagination
from protocols.rest.v2drive.api import iso
from protocols.rest.v2drive.auth import Caller
from protocols.rest.v2drive.errors import json_answer, not_found
from protocols.rest.v2drive.files import FilesApi
from storage import errors, versions
from storage.authz import Action


class VersionsApi(FilesApi):
    """The file version endpoints."""

    def _version(self, v: versions.VersionRow, owner: str, checksum: str | None
                 ) -> dict[str, Any]:
        out = {"version_id": versions.public_id(v.row_id), "version_number": v.number,
               "size": v.size, "uploaded_by": owner, "created_at": iso(v.created_at),
               "is_current": v.is_current}
        if v.is_current and checksum:
            out["checksum_sha256"] = checksum
        return out

    async def list_versions(self, caller: Caller, file_id: str) -> Response:
        """GET /v2/files/:id/versions."""
        pagination.limit_param()
        pagination.offset_param()
        scope = await self.scope(caller)
        row, _ = await self._file(scope, file_id)
        rows = await versions.key_versions(self.services.db, scope.bucket, row["key"])
        out = pagination.page(rows)
        out["data"] = [self._version(v, scope.account_id, row.get("checksum_sha256") or None)
                       for v in out["data"]]
        return json_answer(out)

    async def restore_version(self, caller: Caller, file_id: str, version_id: str) -> Response:
        """POST /v2/files/:id/versions/:version_id/restore: a new current version."""
        scope = await self.scope(caller, Action.WRITE)
        row, _ = await self._file(scope, file_id)
        missing = not_found(f"The version with ID '{version_id}' was not found.")
        try:
            row_id = versions.row_of(version_id)
        except errors.NoSuchVersion:
            raise missing from None
        if await versions.locate(self.services.db, row_id) != (scope.bucket.name, row["key"]):
            raise missing
        info = await self.objects.restore_version(scope.bucket, row["key"], row_id)
        # The restored bytes are another version's: their checksum is not known here.
        await self.drive.update_file(scope, file_id, checksum_sha256="")
        await self.index.refresh(scope.bucket, row["key"])
        assert info.row_id is not None
        return json_answer({"file_id": file_id, "restored_version_id": version_id,
                            "version_id": versions.public_id(info.row_id),
                            "version_number": info.version_number, "size": info.size,
                            "created_at": iso(info.last_modified)})
