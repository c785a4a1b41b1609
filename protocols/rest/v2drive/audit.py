"""``GET /v2/audit-logs`` (seed 004): the account's events, newest first.

Requires the ``audit.read`` scope and a Business or Enterprise plan (the
document: "Available on Business and Enterprise plans").  Entries come from
the core's events table (storage/audit.py), so changes made through S3,
SFTP and every REST surface are there with their ``origin`` and the client
that made them: ``ip_address`` is the peer address of the request (or SFTP
session), ``user_agent`` its User-Agent (an SFTP client's version string);
both are null for changes no client request made (the trash purge, workers).
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
from typing import Any

from quart import Response, request

from protocols.rest.v2drive.api import DriveApi, iso, parse_time
from protocols.rest.v2drive.auth import Caller, require_business
from protocols.rest.v2drive.errors import invalid, json_answer
from protocols.rest.v2drive.pagination import limit_param
from storage.audit import AuditEntry, AuditLog, AuditQuery, actions, known_action
from storage.drive import Scope


def _before(cursor: str) -> int | None:
    if not cursor:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid("The cursor is not valid.") from None
    before = value.get("before") if isinstance(value, dict) else None
    if not isinstance(before, int) or isinstance(before, bool):
        raise invalid("The cursor is not valid.")
    return before


def _cursor(last_id: int) -> str:
    raw = json.dumps({"before": last_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class AuditApi(DriveApi):
    """The audit log endpoint."""

    async def audit_logs(self, caller: Caller) -> Response:
        """GET /v2/audit-logs?start_date&end_date&actor_id&action&ip_address."""
        require_business(caller)
        args = request.args
        action = args.get("action") or None
        if action is not None and not known_action(action):
            raise invalid(f"action must be one of {', '.join(actions())}.")
        start = parse_time("start_date", args.get("start_date"))
        end = parse_time("end_date", args.get("end_date"))
        if start and end and start > end:
            raise invalid("start_date must not be after end_date.")
        query = AuditQuery(caller.account.id, start, end, args.get("actor_id") or None, action,
                           args.get("ip_address") or None)
        limit, before = limit_param(), _before(args.get("cursor", ""))
        entries, total, more = await AuditLog(self.services.db).page(query, limit, before)
        scope = await self.scope(caller)
        ids = await self._file_ids(scope, entries)
        return json_answer({
            "data": [self._describe_entry(e, ids) for e in entries], "has_more": more,
            "next_cursor": _cursor(entries[-1].id) if more and entries else None,
            "total_count": total})

    async def _file_ids(self, scope: Scope, entries: list[AuditEntry]) -> dict[str, str]:
        keys = [e.key for e in entries if e.key and e.bucket == scope.bucket.name]
        rows = await self.drive.file_rows(scope, keys) if keys else {}
        return {k: r["id"] for k, r in rows.items()}

    def _describe_entry(self, e: AuditEntry, ids: dict[str, str]) -> dict[str, Any]:
        if e.key and e.key.endswith("/"):
            resource = {"type": "folder", "id": None, "name": posixpath.basename(e.key[:-1]),
                        "path": "/" + e.key[:-1], "bucket": e.bucket}
        elif e.key:
            resource = {"type": "file", "id": ids.get(e.key), "name": posixpath.basename(e.key),
                        "path": "/" + e.key, "bucket": e.bucket}
        elif e.bucket:
            resource = {"type": "bucket", "id": e.bucket, "name": e.bucket}
        elif e.type.startswith("team."):
            resource = {"type": "team", "id": e.data.get("teamId"),
                        "user_id": e.data.get("userId")}
        else:
            resource = {"type": e.type.split(".", 1)[0], "id": e.data.get("keyId"),
                        "name": e.data.get("name")}
        return {"id": f"log_{e.id}", "timestamp": iso(e.at),
                "actor": {"id": e.actor_id, "email": e.actor_email},
                "action": e.action, "resource": resource,
                "ip_address": e.ip_address, "user_agent": e.user_agent,
                "origin": e.origin}
