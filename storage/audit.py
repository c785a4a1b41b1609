"""The audit log of an account, read from the events outbox (storage/events.py).

Every committed change through any protocol (S3, SFTP, every REST dialect,
the dashboard) writes one row into ``events`` in its own transaction, with
its origin; the audit log is a filtered, newest-first view of the rows of
one account, so nothing has to be written twice and nothing is missing.

Filters: a time range (``start``/``end``, at most :data:`RETENTION_DAYS`
back), the actor (the account that made the change; where the core did not
record one, the account the event belongs to), the action (the document's
names, see :data:`ACTIONS`) and the client address.  Each event carries the
address and user agent of the request that made it, when a client request
did (``ip_address``, ``user_agent``: set by every protocol with the origin,
see :class:`storage.events.Origin`).  Pages are keyset pages by event id: a cursor is
the last id returned, so entries recorded meanwhile do not shift a walk.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from storage.drive import aware, fetch_rows

RETENTION_DAYS = 365
DEFAULT_DAYS = 7
# The document's action names of the core's event types.
ACTIONS = {
    "object.created": "file.created", "object.updated": "file.updated",
    "object.deleted": "file.deleted", "bucket.created": "bucket.created",
    "bucket.deleted": "bucket.deleted", "key.created": "api_key.created",
    "key.revoked": "api_key.revoked", "share.created": "file.shared",
    "share.downloaded": "file.downloaded", "quota.warning": "quota.warning",
    "quota.exceeded": "quota.exceeded", "team.member_added": "team.member_added",
    "team.member_removed": "team.member_removed",
}
EVENT_TYPES = {action: etype for etype, action in ACTIONS.items()}
# A folder is a marker key ending in "/": its object events are folder actions.
FOLDER_ACTIONS = {"object.created": "folder.created", "object.deleted": "folder.deleted"}
EVENT_TYPES.update({action: etype for etype, action in FOLDER_ACTIONS.items()})


@dataclass(frozen=True)
class AuditQuery:
    """What to read: the account and its filters."""

    account_id: str
    start: datetime | None = None
    end: datetime | None = None
    actor_id: str | None = None
    action: str | None = None
    ip_address: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One event as the audit log shows it."""

    id: int
    at: datetime
    type: str
    action: str
    actor_id: str
    actor_email: str | None
    bucket: str | None
    key: str | None
    data: dict[str, Any]
    origin: str
    ip_address: str | None = None
    user_agent: str | None = None


def window(start: datetime | None, end: datetime | None,
           now: datetime | None = None) -> tuple[datetime, datetime]:
    """The time range read: 7 days back by default, never past the retention."""
    now = now or datetime.now(UTC)
    end = end or now
    start = start or end - timedelta(days=DEFAULT_DAYS)
    return max(start, now - timedelta(days=RETENTION_DAYS)), end


def _where(query: AuditQuery) -> tuple[str, list[Any]]:
    start, end = window(query.start, query.end)
    clauses = ["e.account_id = ?", "e.created_at >= ?", "e.created_at <= ?"]
    params: list[Any] = [query.account_id, start, end]
    if query.actor_id:
        clauses.append("(e.actor = ? OR (e.actor = '' AND e.account_id = ?))")
        params += [query.actor_id, query.actor_id]
    if query.action:
        clauses.append("e.type = ?")
        params.append(EVENT_TYPES.get(query.action, query.action))
        if EVENT_TYPES.get(query.action) in FOLDER_ACTIONS:
            folder = query.action in FOLDER_ACTIONS.values()
            clauses.append("e.\"key\" LIKE '%/'" if folder else "e.\"key\" NOT LIKE '%/'")
    if query.ip_address:
        clauses.append("e.ip_address = ?")
        params.append(query.ip_address)
    return " AND ".join(clauses), params


class AuditLog:
    """Reads an account's audit log from the events table."""

    def __init__(self, db: Any) -> None:
        self._db = db

    async def page(self, query: AuditQuery, limit: int,
                   before_id: int | None = None) -> tuple[list[AuditEntry], int, bool]:
        """Up to ``limit`` entries older than ``before_id``, newest first; the
        total matching the filters; whether more follow."""
        where, params = _where(query)
        total = await fetch_rows(self._db, f"SELECT COUNT(*) AS n FROM events e WHERE {where}",
                                 params)
        if before_id is not None:
            where += " AND e.id < ?"
            params = [*params, before_id]
        rows = await fetch_rows(
            self._db,
            "SELECT e.id, e.type, e.account_id, e.bucket, e.\"key\", e.data, e.origin, e.actor, "
            "e.created_at, e.ip_address, e.user_agent, a.email FROM events e "
            "LEFT JOIN accounts a ON a.id = "
            "(CASE WHEN e.actor = '' THEN e.account_id ELSE e.actor END) "
            f"WHERE {where} ORDER BY e.id DESC LIMIT ?", [*params, limit + 1])
        entries = [_entry(r) for r in rows[:limit]]
        return entries, int(total[0]["n"]), len(rows) > limit


def _entry(row: dict[str, Any]) -> AuditEntry:
    data = row["data"]
    if isinstance(data, str | bytes):
        data = json.loads(data)
    return AuditEntry(
        id=int(row["id"]), at=aware(row["created_at"]) or datetime.now(UTC), type=row["type"],
        action=(FOLDER_ACTIONS[row["type"]] if row["type"] in FOLDER_ACTIONS
                and str(row.get("key") or "").endswith("/")
                else ACTIONS.get(row["type"], row["type"])),
        actor_id=row["actor"] or row["account_id"], actor_email=row.get("email"),
        bucket=row.get("bucket"), key=row.get("key"),
        data=data if isinstance(data, dict) else {}, origin=row.get("origin") or "",
        ip_address=row.get("ip_address") or None, user_agent=row.get("user_agent") or None)


def known_action(action: str) -> bool:
    """Whether ``action`` is one the log can filter on."""
    return action in EVENT_TYPES or action in ACTIONS


def actions() -> Sequence[str]:
    """The action names, sorted."""
    return sorted(EVENT_TYPES)
