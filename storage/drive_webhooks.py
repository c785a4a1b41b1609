"""v2-drive webhooks (seed 004) over the cluster's webhook delivery.

A v2-drive webhook is a row of ``webhooks`` like any other (fan-out from
the events outbox, leases, retries and the delivery log are
storage/webhooks.py's), with two differences:

* its id starts with ``whd_`` and its events are the core's names of the
  document's: ``file.created`` -> ``object.created``, ``file.updated`` ->
  ``object.updated``, ``file.deleted`` -> ``object.deleted``,
  ``file.shared`` -> ``share.created``, ``folder.created`` -> ``object.created``
  of a folder marker; ``team.member_added`` / ``team.member_removed`` are the
  core's own (storage/teams.py records them for the team's admins and the
  member concerned, whichever dialect changed the team);
* its payload is the document's ``{id, type, timestamp, data: {file_id,
  name, size, owner_id}, signature}`` (for team events ``data`` is
  ``{team_id, user_id, role}``, the role in the document's names: admin,
  editor, viewer), rendered by :func:`render` (registered
  in ``webhooks.FORMATS`` by the node).  ``signature`` is ``sha256=`` and the
  hex HMAC-SHA256, with the webhook's secret, of the compact JSON of the
  payload without the ``signature`` member; the delivery's
  ``X-CloudStorage-Signature`` header still signs the exact body sent.

An ``object.created`` event of a folder marker is sent as
``folder.created``, and a webhook that asked for files only receives it too
(a delivery is per core event).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import posixpath
from typing import Any

from storage import errors
from storage.audit import ACTIONS
from storage.buckets import BucketService
from storage.drive import Drive, Scope
from storage.events import TEAM_TYPES, Event
from storage.webhooks import InvalidWebhook, body_of

log = logging.getLogger(__name__)
PREFIX = "whd"
# The document's webhook events by core type, under the audit log's names
# (one table of them); object.created is file.created or folder.created.
FROM_CORE = {core: ACTIONS[core] for core in ("object.updated", "object.deleted",
                                              "share.created", *sorted(str(t) for t in TEAM_TYPES))}
TO_CORE = {"file.created": "object.created", "folder.created": "object.created",
           **{name: core for core, name in FROM_CORE.items()}}
# The team roles of the model (storage/teams.py) under the document's names.
ROLE_NAMES = {"admin": "admin", "write": "editor", "read": "viewer"}


def core_events(names: Any) -> tuple[list[str], list[str]]:
    """(core event names, the document's names) of a webhook's ``events``."""
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise InvalidWebhook("events must be a non-empty list of event names")
    for name in names:
        if name not in TO_CORE:
            raise InvalidWebhook(f"unknown event {name[:64]!r} (known: {', '.join(TO_CORE)})")
    drive = list(dict.fromkeys(names))
    return list(dict.fromkeys(TO_CORE[n] for n in drive)), drive


def drive_names(core: Any) -> list[str]:
    """The document's names a webhook's core events stand for."""
    out = []
    for name in core:
        if name == "object.created":
            out += ["file.created", "folder.created"]
        elif name in FROM_CORE:
            out.append(FROM_CORE[name])
    return out


def event_type(event: Event) -> str:
    """The document's type of a core event."""
    if str(event.type) == "object.created":
        return "folder.created" if str(event.data.get("key", "")).endswith("/") \
            else "file.created"
    return FROM_CORE.get(str(event.type), str(event.type))


def sign(secret: str, payload: dict[str, Any]) -> str:
    """The payload's ``signature`` member."""
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


class Renderer:
    """Renders v2-drive payloads; file ids come from the drive's id rows."""

    def __init__(self, drive: Drive, buckets: BucketService) -> None:
        self.drive = drive
        self.buckets = buckets

    async def _file_id(self, event: Event, bucket_name: str, key: str) -> str | None:
        try:
            bucket = await self.buckets.get(bucket_name)
        except errors.NoSuchBucket:
            return None
        # Delivery renders after the fact: by then the file may be trashed, so
        # the id it has or last had comes first (trashed rows keep their key).
        known = await self.drive.known_file_id(bucket.name, key)
        if known is not None or str(event.type) == "object.deleted":
            return known
        rows = await self.drive.file_rows(Scope(event.account_id, bucket), [key])
        return str(rows[key]["id"])

    async def render(self, event: Event, event_id: int, secret: str) -> bytes:
        """The body of one delivery."""
        try:
            bucket, key = str(event.data.get("bucket", "")), str(event.data.get("key", ""))
            kind = event_type(event)
            data: dict[str, Any] = {"name": posixpath.basename(key.rstrip("/")),
                                    "owner_id": event.account_id}
            if str(event.type) in {str(t) for t in TEAM_TYPES}:
                role = str(event.data.get("role", ""))
                data = {"team_id": event.data.get("teamId"),
                        "user_id": event.data.get("userId"),
                        "role": ROLE_NAMES.get(role, role)}
            elif kind == "folder.created":
                data["folder_id"] = (await self.drive.folder_rows(
                    Scope(event.account_id, await self.buckets.get(bucket)), [key]))[key].id
            else:
                data["file_id"] = await self._file_id(event, bucket, key) if key else None
                data["size"] = event.data.get("size")
            payload = {"id": f"evt_{event_id}", "type": kind,
                       "timestamp": event.payload()["timestamp"], "data": data}
            payload["signature"] = sign(secret, payload)
            return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        except Exception:  # never lose a delivery to a rendering failure
            log.exception("v2-drive webhook payload of event %s", event_id)
            return body_of(event)
