"""The Billing API of the dashboard (session cookie) and the Stripe webhook.

``POST /api/billing`` (checkout), ``POST /api/billing/change``,
``POST /api/billing/portal``, ``GET /api/billing/details``, with the fields
of the product documents; ``POST /api/billing/webhook`` takes Stripe's
signed events (no session: the signature is the authentication).  Without a
Stripe key every one of them answers 503 BillingNotConfigured.
"""

from __future__ import annotations

import logging
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
from storage.accounts import AccountInfo
from storage.billing import Billing
from storage.core import StorageCore

log = logging.getLogger("cloudstorage.billing")

# Stripe's events are a few KiB; anything much larger is not one.
WEBHOOK_LIMIT = 512 * 1024



async def _raw_body(limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes."""
    data = bytearray()
    async for piece in request.body:
        data += piece
        if len(data) > limit:
            raise ApiError(413, "PayloadTooLarge", f"The body exceeds {limit} bytes.")
    return bytes(data)


def create_billing_blueprint(services: StorageCore, gate: SessionGate) -> Blueprint:
    """The billing routes over a node's services."""
    bp = Blueprint("billing", __name__)
    bp.before_request(check_request_params)
    bp.before_request(from_dashboard)
    session_required = gate.required
    billing = Billing(services.settings.billing, services.db,
                      default_quota=services.settings.accounts.default_quota)

    async def plan_name() -> str:
        return string_field(await read_json(), "planName", max_len=16)

    @bp.before_request
    async def require_stripe() -> None:
        # Not configured is the first thing a caller learns, before any
        # validation of what they sent.
        billing.require()

    @bp.post("/api/billing")
    @session_required
    async def checkout(account: AccountInfo) -> Any:
        return json_response({"url": await billing.checkout(account, await plan_name())})

    @bp.post("/api/billing/change")
    @session_required
    async def change(account: AccountInfo) -> Any:
        done = await billing.change(account, await plan_name())
        if done.immediate:
            return json_response({"success": True, "effective": "immediate", "prorated": True})
        end = iso(done.current_period_end) if done.current_period_end else None
        return json_response({"success": True, "effective": "end_of_period",
                              "currentPeriodEnd": end})

    @bp.post("/api/billing/portal")
    @session_required
    async def portal(account: AccountInfo) -> Any:
        return json_response({"url": await billing.portal(account)})

    @bp.get("/api/billing/details")
    @session_required
    async def details(account: AccountInfo) -> Any:
        return json_response(await billing.details(account))

    @bp.post("/api/billing/webhook")
    async def webhook() -> Any:
        payload = await _raw_body(WEBHOOK_LIMIT)
        event = billing.verify(payload, request.headers.get("Stripe-Signature", ""))
        applied = await billing.handle_event(event)
        if not applied:
            log.info("Stripe event %s delivered again; already applied", event["id"])
        return json_response({"received": True, "duplicate": not applied})

    return bp
