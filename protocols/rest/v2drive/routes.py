"""The v2-drive routes (seed 004): each admits the request with the
endpoint's scope and runs its method (files.py, folders.py, users.py, ...).

``/v2/buckets/...`` belongs to v2-objects (seed 003); every other ``/v2``
path is this dialect's, and an unknown one answers its 404 format.
"""

from __future__ import annotations

from quart import Blueprint, Response

from protocols.rest.session import SessionGate
from protocols.rest.v2drive.audit import AuditApi
from protocols.rest.v2drive.errors import error_response, not_found, request_id
from protocols.rest.v2drive.folders import FoldersApi
from protocols.rest.v2drive.keys import create_v2drive_keys_blueprint
from protocols.rest.v2drive.oauth import create_oauth_blueprint
from protocols.rest.v2drive.search import SearchApi
from protocols.rest.v2drive.teams import TeamsApi
from protocols.rest.v2drive.trash import TrashApi
from protocols.rest.v2drive.users import UsersApi
from protocols.rest.v2drive.versions import VersionsApi
from protocols.rest.v2drive.webhooks import WebhooksApi
from storage.core import StorageCore
from storage.oauth import OAuthServer

READ, WRITE = "files.read", "files.write"


class V2DriveApi(FoldersApi, VersionsApi, UsersApi, AuditApi, TrashApi, SearchApi,
                 TeamsApi, WebhooksApi):
    """Every v2-drive endpoint over one storage core."""


def create_v2drive_blueprint(services: StorageCore, gate: SessionGate) -> Blueprint:
    """The ``/v2`` routes of the v2-drive dialect."""
    bp = Blueprint("v2drive", __name__)
    api = V2DriveApi(services)
    # The dashboard's key routes and OAuth come with the dialect (one
    # registration in the app); OAuth access tokens are admitted by the gate.
    bp.register_blueprint(create_v2drive_keys_blueprint(services, gate))
    oauth = OAuthServer(services.db)
    api.gate.tokens = oauth.resolve
    bp.register_blueprint(create_oauth_blueprint(services, oauth))

    @bp.get("/v2/users/me")
    async def me() -> Response:
        return await api.serve(None, api.me)

    @bp.get("/v2/users")
    async def users() -> Response:
        return await api.serve("teams.read", api.list_users)

    @bp.patch("/v2/users/<user_id>")
    async def update_user(user_id: str) -> Response:
        return await api.serve(None, lambda c: api.update_user(c, user_id))

    @bp.delete("/v2/users/<user_id>")
    async def delete_user(user_id: str) -> Response:
        return await api.serve("teams.write", lambda c: api.delete_user(c, user_id))

    @bp.post("/v2/files")
    async def create_file() -> Response:
        return await api.serve(WRITE, api.create)

    @bp.get("/v2/files")
    async def list_files() -> Response:
        return await api.serve(READ, api.list_files)

    @bp.get("/v2/files/<file_id>")
    async def get_file(file_id: str) -> Response:
        return await api.serve(READ, lambda c: api.get(c, file_id))

    @bp.put("/v2/files/<file_id>")
    async def replace_file(file_id: str) -> Response:
        return await api.serve(WRITE, lambda c: api.replace(c, file_id))

    @bp.patch("/v2/files/<file_id>")
    async def update_file(file_id: str) -> Response:
        return await api.serve(WRITE, lambda c: api.update(c, file_id))

    @bp.get("/v2/files/<file_id>/download")
    async def download(file_id: str) -> Response:
        return await api.serve(READ, lambda c: api.download(c, file_id))

    @bp.route("/v2/files/<file_id>/metadata", methods=["POST", "PUT"])
    async def set_metadata(file_id: str) -> Response:
        return await api.serve(WRITE, lambda c: api.set_metadata(c, file_id))

    @bp.get("/v2/files/<file_id>/metadata")
    async def get_metadata(file_id: str) -> Response:
        return await api.serve(READ, lambda c: api.get_metadata(c, file_id))

    @bp.put("/v2/presigned/<file_id>")
    async def presigned(file_id: str) -> Response:
        return await api.presigned_upload(file_id)

    @bp.get("/v2/dl/<file_id>")
    async def signed_download(file_id: str) -> Response:
        return await api.signed_download(file_id)

    @bp.post("/v2/folders")
    async def create_folder() -> Response:
        return await api.serve(WRITE, api.create_folder)

    @bp.get("/v2/folders/<folder_id>")
    async def get_folder(folder_id: str) -> Response:
        return await api.serve(READ, lambda c: api.get_folder(c, folder_id))

    @bp.get("/v2/folders/<folder_id>/contents")
    async def contents(folder_id: str) -> Response:
        return await api.serve(READ, lambda c: api.contents(c, folder_id))

    @bp.patch("/v2/folders/<folder_id>")
    async def update_folder(folder_id: str) -> Response:
        return await api.serve(WRITE, lambda c: api.update_folder(c, folder_id))

    @bp.delete("/v2/files/<file_id>")
    async def trash_file(file_id: str) -> Response:
        return await api.serve(WRITE, lambda c: api.trash_file(c, file_id))

    @bp.delete("/v2/folders/<folder_id>")
    async def trash_folder(folder_id: str) -> Response:
        return await api.serve(WRITE, lambda c: api.trash_folder(c, folder_id))

    @bp.get("/v2/trash")
    async def list_trash() -> Response:
        return await api.serve(READ, api.list_trash)

    @bp.post("/v2/trash/<item_id>/restore")
    async def restore(item_id: str) -> Response:
        return await api.serve(WRITE, lambda c: api.restore(c, item_id))

    @bp.delete("/v2/trash/<item_id>")
    async def delete_forever(item_id: str) -> Response:
        return await api.serve(WRITE, lambda c: api.delete_forever(c, item_id))

    @bp.get("/v2/files/<file_id>/versions")
    async def list_versions(file_id: str) -> Response:
        return await api.serve(READ, lambda c: api.list_versions(c, file_id))

    @bp.post("/v2/files/<file_id>/versions/<version_id>/restore")
    async def restore_version(file_id: str, version_id: str) -> Response:
        return await api.serve(WRITE, lambda c: api.restore_version(c, file_id, version_id))

    @bp.get("/v2/teams")
    async def list_teams() -> Response:
        return await api.serve("teams.read", api.list_teams)

    @bp.post("/v2/teams")
    async def create_team() -> Response:
        return await api.serve("teams.write", api.create_team)

    @bp.post("/v2/teams/<team_id>/members")
    async def add_members(team_id: str) -> Response:
        return await api.serve("teams.write", lambda c: api.add_members(c, team_id))

    @bp.post("/v2/webhooks")
    async def create_webhook() -> Response:
        return await api.serve("webhooks.write", api.create_webhook)

    @bp.get("/v2/webhooks")
    async def list_webhooks() -> Response:
        return await api.serve("webhooks.read", api.list_webhooks)

    @bp.delete("/v2/webhooks/<hook_id>")
    async def delete_webhook(hook_id: str) -> Response:
        return await api.serve("webhooks.write", lambda c: api.delete_webhook(c, hook_id))

    @bp.get("/v2/search")
    async def search() -> Response:
        return await api.serve(READ, api.search)

    @bp.get("/v2/audit-logs")
    async def audit_logs() -> Response:
        return await api.serve("audit.read", api.audit_logs)

    @bp.route("/v2/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def unknown(rest: str) -> Response:
        return error_response(not_found(f"No endpoint answers /v2/{rest}."), request_id())

    return bp
