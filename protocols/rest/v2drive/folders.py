"""v2-drive folders: create, read, contents, rename/move/recolour.

A folder is a key prefix of the caller's drive with an id row (see
storage/drive.py).  A move or rename copies every key under the prefix to
the new prefix and deletes the old keys, so S3 and SFTP see the keys moved.
"""

from __future__ import annotations

import re
from typing import Any

from quart import Response

from protocols.rest.v2drive import pagination
from protocols.rest.v2drive.api import string
from protocols.rest.v2drive.auth import Caller
from protocols.rest.v2drive.errors import invalid, json_answer
from protocols.rest.v2drive.files import FilesApi
from storage.authz import Action
from storage.drive import ROOT_ID, FolderRow, Scope, check_name

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def _color(body: dict[str, Any]) -> str | None:
    color = string(body, "color", max_len=16)
    if color is not None and not _COLOR.match(color):
        raise invalid("'color' must be a hex colour such as #4f46e5.")
    return color


class FoldersApi(FilesApi):
    """The ``/v2/folders`` endpoints (over the files ones, for contents)."""

    async def _describe(self, scope: Scope, folder: FolderRow) -> dict[str, Any]:
        subfolders, files = await self.drive.children(scope, folder.path)
        parent = None
        if folder.id != ROOT_ID:
            parent = (await self.folder_ids(scope, [folder.parent_path]))[folder.parent_path].id
        return self.describe_folder(folder, parent, len(subfolders) + len(files))

    async def create_folder(self, caller: Caller) -> Response:
        """POST /v2/folders ``{name, parent_folder_id?, color?}`` (201)."""
        body = await self.body()
        name = check_name(string(body, "name", required=True, max_len=255))
        color = _color(body)
        scope = await self.scope(caller, Action.WRITE)
        parent = await self.drive.folder(scope, string(body, "parent_folder_id"))
        folder = await self.drive.make_folder(scope, parent, name)
        if color:
            await self.drive.update_folder(scope, folder.id, color=color)
            folder = await self.drive.folder(scope, folder.id)
        return json_answer(self.describe_folder(folder, parent.id, 0), 201)

    async def get_folder(self, caller: Caller, folder_id: str) -> Response:
        """GET /v2/folders/:id."""
        scope = await self.scope(caller)
        folder = await self.drive.folder(scope, folder_id)
        return json_answer(await self._describe(scope, folder))

    async def contents(self, caller: Caller, folder_id: str) -> Response:
        """GET /v2/folders/:id/contents: sub-folders first, then files, by name."""
        pagination.limit_param()
        pagination.offset_param()
        scope = await self.scope(caller)
        folder = await self.drive.folder(scope, folder_id)
        subfolders, files = await self.drive.children(scope, folder.path)
        items: list[tuple[str, Any]] = [("folder", p) for p in sorted(subfolders)]
        items += [("file", e) for e in sorted(files, key=lambda e: e.key)]
        out = pagination.page(items)
        chosen = out["data"]
        folder_rows = await self.folder_ids(scope, [p for t, p in chosen if t == "folder"])
        file_rows = await self.drive.file_rows(scope, [e.key for t, e in chosen if t == "file"])
        data = []
        for kind, item in chosen:
            if kind == "folder":
                data.append({"type": "folder",
                             **self.describe_folder(folder_rows[item], folder.id)})
            else:
                data.append({"type": "file", **await self._listed(scope, file_rows[item.key],
                                                                  item)})
        out["data"] = data
        return json_answer(out)

    async def update_folder(self, caller: Caller, folder_id: str) -> Response:
        """PATCH /v2/folders/:id ``{name?, color?, parent_folder_id?}``."""
        body = await self.body()
        name = string(body, "name", max_len=255)
        color = _color(body)
        parent_id = string(body, "parent_folder_id")
        scope = await self.scope(caller, Action.WRITE)
        folder = await self.drive.folder(scope, folder_id)
        if folder.id == ROOT_ID:
            raise invalid("The root folder cannot be renamed or moved.")
        if name is not None or parent_id is not None:
            parent_path = folder.parent_path
            if parent_id is not None:
                parent_path = (await self.drive.folder(scope, parent_id)).path
            new_path = f"{parent_path}{check_name(name or folder.name)}/"
            await self.drive.move_folder(scope, folder, new_path)
        if color is not None:
            await self.drive.update_folder(scope, folder_id, color=color)
        return json_answer(await self._describe(scope, await self.drive.folder(scope, folder_id)))
