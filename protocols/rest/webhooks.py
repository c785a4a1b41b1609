"""``/api/webhooks``: an account's webhook endpoints (session cookie, as the
dashboard).

``POST`` ``{url, events}`` answers 201 ``{id, url, events, secret, active,
createdAt}``; the ``whsec_`` secret appears only in that answer.  ``GET``
lists them (no secrets), ``PATCH`` ``{id, url?, events?, active?}`` changes
one (``active: true`` re-enables a disabled webhook and resets its failure
count), ``DELETE ?id=`` removes one.  ``GET /api/webhooks/deliveries?id=``
is the delivery log.  A URL whose host is (or resolves to) a loopback,
private, link-local or otherwise non-public address is refused with 400
unless the operator allowed it (``[outbound]``).
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, request

from protocols.rest.common import (
    ApiError,
    check_request_params,
    iso,
    json_response,
    read_json,
    string_field,
)
from protocols.rest.session import SessionGate, from_dashboard
from storage import outbound
from storage.accounts import AccountInfo
from storage.core import StorageCore
from storage.crypto import SecretBox
from storage.webhooks import WebhookInfo, WebhookService


def _webhook(w: WebhookInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"id": w.id, "url": w.url, "events": list(w.events),
                           "active": w.active, "createdAt": iso(w.created_at),
                           "failureCount": w.failures}
    if w.disabled_reason:
        out["disabledReason"] = w.disabled_reason
    return out


def _delivery(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"dlv_{d['id']}", "eventId": f"evt_{d['event_id']}", "event": d["event_type"],
        "status": d["status"], "attempts": d["attempts"], "responseCode": d["response_code"],
        "durationMs": d["duration_ms"], "responseBody": d["response_body"],
        "error": d["error"], "createdAt": iso(d["created_at"]),
        "updatedAt": iso(d["updated_at"]),
    }


def _hook_id(value: str) -> str:
    if not value:
        raise ApiError(400, "MissingField", "The parameter 'id' is required.")
    return value[:64]


def create_webhooks_blueprint(services: StorageCore, gate: SessionGate) -> Blueprint:
    """The /api/webhooks routes over a node's storage core."""
    bp = Blueprint("webhooks", __name__)
    bp.before_request(from_dashboard)
    bp.before_request(check_request_params)
    settings = services.settings
    hooks = WebhookService(services.db, SecretBox(settings.cluster_secret()),
                           outbound.OutboundPolicy.from_settings(settings),
                           max_per_account=settings.webhooks.max_per_account)
    session_required = gate.required

    @bp.post("/api/webhooks")
    @session_required
    async def create(account: AccountInfo) -> Any:
        body = await read_json()
        if body.get("url") is None:
            raise ApiError(400, "MissingField", "The field 'url' is required.")
        info, secret = await hooks.create(account.id, body.get("url"), body.get("events"))
        return json_response({**_webhook(info), "secret": secret}, 201)

    @bp.get("/api/webhooks")
    @session_required
    async def list_hooks(account: AccountInfo) -> Any:
        return json_response({"webhooks": [_webhook(w) for w in await hooks.list_for(account.id)]})

    @bp.patch("/api/webhooks")
    @session_required
    async def update(account: AccountInfo) -> Any:
        body = await read_json()
        hook_id = string_field(body, "id", max_len=64)
        info = await hooks.update(account.id, hook_id, url=body.get("url"),
                                  events=body.get("events"), active=body.get("active"))
        return json_response(_webhook(info))

    @bp.delete("/api/webhooks")
    @session_required
    async def delete(account: AccountInfo) -> Any:
        await hooks.delete(account.id, _hook_id(request.args.get("id", "")))
        return json_response({"success": True})

    @bp.get("/api/webhooks/deliveries")
    @session_required
    async def deliveries(account: AccountInfo) -> Any:
        rows = await hooks.deliveries(account.id, _hook_id(request.args.get("id", "")))
        return json_response({"deliveries": [_delivery(d) for d in rows]})

    return bp
