"""The v1-pro routes (seed 002): each one admits the request and runs its
endpoint (handlers.py).

``/api/v1/files`` is shared with the Simple REST API of seed 000: a request
carrying a ``csb_live_`` Bearer key is answered here, by a before-request
hook of the app (ahead of the routing); any other goes on to
``protocols/rest/files.py``.
"""

from __future__ import annotations

from quart import Blueprint, Response, request

from protocols.rest.v1pro.auth import is_pro_request
from protocols.rest.v1pro.errors import error_response, invalid
from protocols.rest.v1pro.handlers import V1ProApi
from storage.core import StorageCore


def create_v1pro_blueprint(services: StorageCore) -> Blueprint:
    """The ``/api/v1`` routes of the v1-pro dialect."""
    bp = Blueprint("v1pro", __name__)
    api = V1ProApi(services)

    @bp.get("/api/v1/me")
    async def me() -> Response:
        return await api.serve(None, api.me)  # any valid key

    @bp.post("/api/v1/upload")
    async def upload() -> Response:
        return await api.serve("upload", api.upload)

    @bp.post("/api/v1/import")
    async def start_import() -> Response:
        return await api.serve("import", api.start_import)

    @bp.get("/api/v1/import/status")
    async def import_status() -> Response:
        return await api.serve("import", api.import_status)

    @bp.post("/api/v1/import/cancel")
    async def cancel_import() -> Response:
        return await api.serve("import", api.cancel_import)

    @bp.get("/api/v1/folders")
    async def folder_tree() -> Response:
        return await api.serve("read", api.folder_tree)

    @bp.before_app_request
    async def shared_files_path() -> Response | None:
        # /api/v1/files belongs to seed 000 too: the key type decides.
        if request.path != "/api/v1/files" or not is_pro_request():
            return None
        if request.method not in ("GET", "HEAD"):
            return error_response(invalid("With an API key, /api/v1/files is read with GET."))
        return await api.serve("read", api.list_files)

    @bp.get("/api/v1/link/<fid>/<name>")
    async def download(fid: str, name: str) -> Response:
        return await api.download(fid)

    return bp
