"""v2-drive webhooks (seed 004): ``POST /v2/webhooks`` ``{url, events,
secret?}``, ``GET /v2/webhooks``, ``DELETE /v2/webhooks/:id``, over the
cluster's webhook delivery with the document's payload (storage/drive_webhooks.py).

Events are listed as the core keeps them: a webhook registered for
``file.created`` alone lists ``file.created`` and ``folder.created`` (both are
the core's ``object.created``).
"""

from __future__ import annotations

from typing import Any

from quart import Response

from protocols.rest.v2drive import pagination
from protocols.rest.v2drive.api import DriveApi, iso, string
from protocols.rest.v2drive.auth import Caller
from protocols.rest.v2drive.errors import invalid, json_answer, not_found
from storage import outbound
from storage.crypto import SecretBox
from storage.drive_webhooks import PREFIX, core_events, drive_names
from storage.webhooks import ALL_TYPES, WebhookInfo, WebhookService


def describe_hook(h: WebhookInfo) -> dict[str, Any]:
    """A webhook as this dialect shows one."""
    return {"id": h.id, "url": h.url, "events": drive_names(h.events), "active": h.active,
            "created_at": iso(h.created_at)}


class WebhooksApi(DriveApi):
    """The ``/v2/webhooks`` endpoints."""

    @property
    def hooks(self) -> WebhookService:
        """The cluster's webhooks."""
        settings = self.services.settings
        return WebhookService(self.services.db, SecretBox(settings.cluster_secret()),
                              outbound.OutboundPolicy.from_settings(settings),
                              max_per_account=settings.webhooks.max_per_account)

    async def create_webhook(self, caller: Caller) -> Response:
        """POST /v2/webhooks (201; ``secret`` is answered only when the server chose it)."""
        body = await self.body()
        url = string(body, "url", required=True, max_len=2048)
        secret = string(body, "secret", max_len=128)
        if secret is not None and len(secret) < 16:
            raise invalid("secret must be 16 to 128 characters.")
        core, drive = core_events(body.get("events"))
        info, chosen = await self.hooks.create(caller.account.id, url, core, id_prefix=PREFIX,
                                               secret=secret, known=ALL_TYPES)
        out = {**describe_hook(info), "events": drive}
        if secret is None:
            out["secret"] = chosen
        return json_answer(out, 201)

    async def list_webhooks(self, caller: Caller) -> Response:
        """GET /v2/webhooks."""
        pagination.limit_param()
        pagination.offset_param()
        hooks = [h for h in await self.hooks.list_for(caller.account.id)
                 if h.id.startswith(PREFIX + "_")]
        out = pagination.page(hooks)
        out["data"] = [describe_hook(h) for h in out["data"]]
        return json_answer(out)

    async def delete_webhook(self, caller: Caller, hook_id: str) -> Response:
        """DELETE /v2/webhooks/:id (204)."""
        if not hook_id.startswith(PREFIX + "_"):
            raise not_found(f"The webhook with ID '{hook_id}' was not found.")
        await self.hooks.delete(caller.account.id, hook_id)
        return json_answer(None, 204)
