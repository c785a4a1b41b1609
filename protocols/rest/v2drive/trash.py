"""v2-drive trash (seed 004): ``DELETE /v2/files/:id`` and ``DELETE
/v2/folders/:id`` move to the trash; ``GET /v2/trash`` lists it;
``POST /v2/trash/:id/restore`` puts an item back; ``DELETE /v2/trash/:id``
deletes it for good.  The model is in storage/drive_trash.py.
"""

from __future__ import annotations

from typing import Any

from quart import Response

from protocols.rest.v2drive import pagination
from protocols.rest.v2drive.api import DriveApi, iso
from protocols.rest.v2drive.auth import Caller
from protocols.rest.v2drive.errors import invalid, json_answer, not_found
from storage.authz import Action
from storage.drive import ROOT_ID
from storage.drive_trash import Trash, TrashItem


def describe_item(item: TrashItem) -> dict[str, Any]:
    """A trash entry."""
    return {"type": item.type, "id": item.id, "name": item.name,
            "original_path": item.original_path, "size": item.size,
            "trashed_at": iso(item.trashed_at), "expires_at": iso(item.expires_at)}


class TrashApi(DriveApi):
    """The trash endpoints."""

    @property
    def trash(self) -> Trash:
        """The trash over this API's drive."""
        return Trash(self.drive)

    async def trash_file(self, caller: Caller, file_id: str) -> Response:
        """DELETE /v2/files/:id: to the trash (204)."""
        scope = await self.scope(caller, Action.WRITE)
        row = await self.drive.file(scope, file_id)
        if row["status"] == "trashed" or await self.trash.trash_key(scope, row["key"]) is None:
            raise not_found(f"The file with ID '{file_id}' was not found.")
        return json_answer(None, 204)

    async def trash_folder(self, caller: Caller, folder_id: str) -> Response:
        """DELETE /v2/folders/:id: the folder and everything in it to the trash (204)."""
        if folder_id == ROOT_ID:
            raise invalid("The root folder cannot be trashed.")
        scope = await self.scope(caller, Action.WRITE)
        folder = await self.drive.folder(scope, folder_id)
        await self.trash.trash_folder(scope, folder)
        return json_answer(None, 204)

    async def list_trash(self, caller: Caller) -> Response:
        """GET /v2/trash."""
        pagination.limit_param()
        pagination.offset_param()
        scope = await self.scope(caller)
        items = await self.trash.items(scope)
        out = pagination.page(items)
        out["data"] = [describe_item(i) for i in out["data"]]
        return json_answer(out)

    async def restore(self, caller: Caller, item_id: str) -> Response:
        """POST /v2/trash/:id/restore."""
        scope = await self.scope(caller, Action.WRITE)
        kind = await self.trash.restore(scope, item_id)
        return json_answer({"id": item_id, "type": kind, "status": "restored"})

    async def delete_forever(self, caller: Caller, item_id: str) -> Response:
        """DELETE /v2/trash/:id: gone for good (204)."""
        scope = await self.scope(caller, Action.WRITE)
        await self.trash.delete(scope, item_id)
        return json_answer(None, 204)
