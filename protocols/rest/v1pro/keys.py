"""Managing ``csb_live_`` keys from the web app (the document's "API Keys panel").

These routes use the dashboard session cookie, not a Bearer key, and answer
in the dashboard's JSON format (``{error, message, status}``):

* ``GET /api/v1pro/keys``: the account's keys (never the keys themselves);
* ``POST /api/v1pro/keys`` ``{name?, scopes?, expires_at?}``: a new key,
  shown once in ``key`` (201); ``scopes`` defaults to all three,
  ``expires_at`` is an ISO 8601 time (or ``expires_in_seconds``);
* ``DELETE /api/v1pro/keys/<id>``: revoke it (it stops working at once).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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
from protocols.rest.v1pro.handlers import iso
from storage import errors
from storage.api_keys import ApiKeyInfo, ApiKeyService
from storage.core import StorageCore


def describe(k: ApiKeyInfo) -> dict[str, Any]:
    """A key as the panel lists it."""
    return {"id": k.id, "name": k.name, "scopes": list(k.scopes), "key_prefix": k.key_prefix,
            "key_last4": k.key_last4, "created_at": iso(k.created_at),
            "expires_at": iso(k.expires_at)}


def _expiry(body: dict[str, Any]) -> datetime | None:
    raw, seconds = body.get("expires_at"), body.get("expires_in_seconds")
    if raw is not None and seconds is not None:
        raise ApiError(400, "InvalidField", "Give expires_at or expires_in_seconds, not both.")
    if seconds is not None:
        if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds <= 0:
            raise ApiError(400, "InvalidField", "expires_in_seconds must be a positive integer.")
        return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(string_field(body, "expires_at", max_len=64))
    except ValueError:
        raise ApiError(400, "InvalidField", "expires_at must be an ISO 8601 time.") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def create_v1pro_keys_blueprint(services: StorageCore, gate: SessionGate) -> Blueprint:
    """The session-authenticated key management routes."""
    bp = Blueprint("v1pro_keys", __name__)
    bp.before_request(from_dashboard)
    bp.before_request(check_request_params)
    cfg = services.settings.v1pro
    keys = ApiKeyService(services.db, max_keys=cfg.max_keys, events_bus=services.events)

    account = gate.account

    @bp.get("/api/v1pro/keys")
    async def list_keys() -> Any:
        owner = await account()
        return json_response({"keys": [describe(k) for k in await keys.list(owner.id)]})

    @bp.post("/api/v1pro/keys")
    async def create_key() -> Any:
        owner = await account()
        body = await read_json()
        name = string_field(body, "name", required=False, max_len=128)
        scopes = body.get("scopes")
        if scopes is not None and (not isinstance(scopes, list)
                                   or not all(isinstance(s, str) for s in scopes)):
            raise ApiError(400, "InvalidField", "scopes must be a list of strings.")
        try:
            new = await keys.create(owner.id, name, scopes, _expiry(body))
        except errors.StorageError as exc:
            raise from_storage(exc) from None
        return json_response({**describe(new.info), "key": new.key}, 201)

    @bp.delete("/api/v1pro/keys/<key_id>")
    async def revoke_key(key_id: str) -> Any:
        owner = await account()
        if not await keys.revoke(owner.id, key_id):
            raise ApiError(404, "NotFound", "No API key has this id.")
        return json_response({"success": True})

    return bp
