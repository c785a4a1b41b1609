"""The admin API's webhook view: every webhook of the cluster with its recent
deliveries (issue 17's operator side of the delivery log).

A blueprint nested in the ``/admin/v1`` one (see :func:`create_admin_blueprint`),
so the parent's bearer-token check and JSON error handlers apply to it too.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, jsonify

from storage import admin_queries as queries
from storage.db import Database

MAX_WEBHOOKS = 1000
DEFAULT_WEBHOOKS = 200
MAX_DELIVERIES = 20


def create_webhooks_blueprint(db: Database) -> Blueprint:
    """``GET /webhooks`` (relative to the parent's prefix) over the metadata ``db``."""
    # Imported here: api.py imports this module to register the blueprint.
    from protocols.admin.api import _int_arg

    bp = Blueprint("admin_webhooks", __name__)

    @bp.get("/webhooks")
    async def webhooks() -> Any:
        limit = _int_arg("limit", DEFAULT_WEBHOOKS, 1, MAX_WEBHOOKS)
        per_hook = _int_arg("deliveries", MAX_DELIVERIES, 0, MAX_DELIVERIES)
        return jsonify({"webhooks": await queries.list_webhooks(
            db, limit=limit, deliveries=per_hook)})

    return bp
