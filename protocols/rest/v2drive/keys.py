"""Managing v2-drive keys from the web app (the document's Developer Dashboard).

Session-cookie routes in the dashboard's JSON format (``{error, message,
status}``):

* ``GET /api/v2drive/keys``: the account's keys (never the keys themselves);
* ``POST /api/v2drive/keys`` ``{type?, name?, scopes?}``: a new key shown once
  in ``key`` (201); ``type`` is ``cs_live_sk_`` (default), ``cs_test_sk_`` or
  ``cs_live_pk_``; ``scopes`` defaults to every scope the type may hold;
* ``DELETE /api/v2drive/keys/<id>``: revoke it (it stops at once, cluster-wide).
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint

from protocols.rest.common import (
    ApiError,
    check_request_params,
    from_storage,
    json_response,
    read_json,
    string_field,
)
from protocols.rest.session import SessionGate, from_dashboard
from protocols.rest.v2drive.api import iso
from storage import errors
from storage.core import StorageCore
from storage.drive_keys import DriveKeyInfo, DriveKeyService


def describe(k: DriveKeyInfo) -> dict[str, Any]:
    """A key as the dashboard lists it."""
    return {"id": k.id, "name": k.name, "type": f"cs_{k.env}_{k.kind}_",
            "scopes": list(k.scopes), "key_prefix": k.key_prefix, "key_last4": k.key_last4,
            "created_at": iso(k.created_at)}


def create_v2drive_keys_blueprint(services: StorageCore, gate: SessionGate) -> Blueprint:
    """The session-authenticated key management routes."""
    bp = Blueprint("v2drive_keys", __name__)
    bp.before_request(from_dashboard)
    bp.before_request(check_request_params)
    keys = DriveKeyService(services.db, events_bus=services.events)

    account = gate.account

    @bp.get("/api/v2drive/keys")
    async def list_keys() -> Any:
        owner = await account()
        return json_response({"keys": [describe(k) for k in await keys.list(owner.id)]})

    @bp.post("/api/v2drive/keys")
    async def create_key() -> Any:
        owner = await account()
        body = await read_json()
        name = string_field(body, "name", required=False, max_len=128)
        kind = string_field(body, "type", required=False, max_len=16) or "cs_live_sk_"
        scopes = body.get("scopes")
        if scopes is not None and (not isinstance(scopes, list)
                                   or not all(isinstance(s, str) for s in scopes)):
            raise ApiError(400, "InvalidField", "scopes must be a list of strings.")
        try:
            info, key = await keys.create(owner.id, kind, name, scopes)
        except errors.StorageError as exc:
            raise from_storage(exc) from None
        return json_response({**describe(info), "key": key}, 201)

    @bp.delete("/api/v2drive/keys/<key_id>")
    async def revoke_key(key_id: str) -> Any:
        owner = await account()
        if not await keys.revoke(owner.id, key_id):
            raise ApiError(404, "NotFound", "No API key has this id.")
        return json_response({"success": True})

    return bp
