"""``GET /v2/search`` (seed 004): ranked full-text search of the caller's drive.

``q`` (required) matches names, the text of supported formats, tags and
metadata (storage/search.py); each query word matches as a prefix and all
must match.  Filters: ``type`` (file or folder), ``file_type`` (a MIME
type) and ``owner_id`` (a drive holds its owner's files only, so another
id finds nothing).  The answer is the document's ``{results, total,
took_ms}``, with ``limit`` / ``cursor`` paging (``has_more``,
``next_cursor``) like every list.
"""

from __future__ import annotations

import posixpath
from typing import Any

from quart import Response, request

from protocols.rest.v2drive import pagination
from protocols.rest.v2drive.api import DriveApi
from protocols.rest.v2drive.auth import Caller
from protocols.rest.v2drive.errors import invalid, json_answer
from storage.drive import SANDBOX, Scope
from storage.search import Hit, SearchIndex, highlight, query_words


class SearchApi(DriveApi):
    """The search endpoint."""

    async def search(self, caller: Caller) -> Response:
        """GET /v2/search?q=&type=&file_type=&owner_id=."""
        q = request.args.get("q", "")
        if not q.strip():
            raise invalid("The query parameter 'q' is required.")
        if len(q) > 512:
            raise invalid("q is limited to 512 characters.")
        kind = request.args.get("type") or None
        if kind not in (None, "file", "folder"):
            raise invalid("type must be file or folder.")
        limit, offset = pagination.limit_param(), pagination.offset_param()
        scope = await self.scope(caller)
        owner = request.args.get("owner_id")
        words = query_words(q)
        await self.index.catch_up()  # every change committed before the search is in it
        hits, took = ([], 0.0) if owner and owner != caller.account.id else await self.index.search(
            scope.bucket.name, words, base=scope.base, hide="" if scope.base else SANDBOX,
            kind=kind, mime=request.args.get("file_type") or None)
        hits = await self._existing(scope, self.index, hits)
        chosen = hits[offset:offset + limit]
        more = offset + limit < len(hits)
        return json_answer({
            "results": await self._results(scope, chosen, words), "total": len(hits),
            "took_ms": took, "has_more": more,
            "next_cursor": pagination.encode({"o": offset + limit}) if more else None})

    async def _existing(self, scope: Scope, index: SearchIndex, hits: list[Hit]) -> list[Hit]:
        # A folder is indexed with the keys under it: drop it once it is empty.
        out = []
        for hit in hits:
            if hit.kind == "folder" and not await self.drive.exists(scope, scope.path(hit.key)):
                await index.forget_missing_folder(hit.bucket, hit.key)
                continue
            out.append(hit)
        return out

    async def _results(self, scope: Scope, hits: list[Hit], words: list[str]
                        ) -> list[dict[str, Any]]:
        files = await self.drive.file_rows(scope, [h.key for h in hits if h.kind == "file"])
        folders = await self.folder_ids(scope, [scope.path(h.key) for h in hits
                                                if h.kind == "folder"])
        out = []
        for h in hits:
            name = posixpath.basename(h.key.rstrip("/"))
            hid = files[h.key]["id"] if h.kind == "file" else folders[scope.path(h.key)].id
            out.append({"type": h.kind, "id": hid, "name": name, "score": h.score,
                        "highlights": {"name": [highlight(name, words)]},
                        "path": "/" + scope.path(h.key).rstrip("/"),
                        "mime_type": h.mime or None})
        return out
