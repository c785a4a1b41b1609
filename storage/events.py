"""The storage core's event stream: one typed event per committed change.

Every change a caller can observe (an object created, updated or deleted, a
bucket created or deleted, a key created or revoked, a quota threshold
crossed, a share created or downloaded) is written as a row of the
``events`` table *in the transaction that makes the change*, whatever
protocol caused it: an event is never lost after a commit and never exists
for a rollback.  That table is the outbox that webhook delivery, the audit
log and search indexing read; after the commit the same event is also
published on this node's :class:`EventBus` for in-process consumers (the
live trace, tests).

Units of work emit events with :func:`record_steps`, so the one statement
runs on the SQLite group-commit writer and through the ORM alike.
"""

from __future__ import annotations

import contextvars
import enum
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from storage import sql


class EventType(enum.StrEnum):
    """The events of the product documents' webhook list."""

    OBJECT_CREATED = "object.created"
    OBJECT_UPDATED = "object.updated"
    OBJECT_DELETED = "object.deleted"
    BUCKET_CREATED = "bucket.created"
    BUCKET_DELETED = "bucket.deleted"
    QUOTA_WARNING = "quota.warning"
    QUOTA_EXCEEDED = "quota.exceeded"
    KEY_CREATED = "key.created"
    KEY_REVOKED = "key.revoked"
    SHARE_CREATED = "share.created"
    SHARE_DOWNLOADED = "share.downloaded"
    TEAM_MEMBER_ADDED = "team.member_added"
    TEAM_MEMBER_REMOVED = "team.member_removed"


# Team membership events are seed 004's (v2-drive) only: seed 000's webhook
# list does not name them, so its webhooks refuse them (storage/webhooks.py).
TEAM_TYPES = frozenset({EventType.TEAM_MEMBER_ADDED, EventType.TEAM_MEMBER_REMOVED})


# quota.warning fires once each time usage rises through this share of the quota.
QUOTA_WARNING_RATIO = 0.8

# Longest client address and user agent kept with an event.
MAX_IP = 64
MAX_USER_AGENT = 512


class Origin(str):
    """The surface that caused a change ("s3", "v2drive", "sftp", ...), which
    also carries the client's address and user agent when a request made it.

    A ``str`` subclass so that it travels unchanged through every service
    that already reads :func:`current_origin` on the trio side and hands it
    to a unit of work on another thread (where the context is not there):
    :func:`record_steps` stores ``ip`` and ``user_agent`` with the event.
    """

    ip: str
    user_agent: str

    def __new__(cls, name: str, ip: str = "", user_agent: str = "") -> Origin:
        made = super().__new__(cls, name)
        made.ip = ip[:MAX_IP]
        made.user_agent = user_agent[:MAX_USER_AGENT]
        return made


# Which surface caused the changes of the current request, with its client:
# set by each protocol adapter around its work, read on the trio side when a
# unit of work is built (the units themselves may run on another thread).
_origin: contextvars.ContextVar[Origin | None] = contextvars.ContextVar("event_origin",
                                                                        default=None)
_UNSET = Origin("")


@contextmanager
def origin(name: str, ip: str = "", user_agent: str = "") -> Iterator[None]:
    """Attribute the changes made inside the block to the surface ``name``
    and the client at ``ip`` running ``user_agent``."""
    token = _origin.set(Origin(name, ip, user_agent))
    try:
        yield
    finally:
        _origin.reset(token)


def set_origin(name: str, ip: str | None = None, user_agent: str | None = None) -> None:
    """Attribute the rest of the current task's changes to ``name`` and its
    client (for protocol adapters whose task serves one request or one
    session).  A client not given is kept: the web app records the request's
    client once for every REST dialect, each of which then names itself."""
    now = current_origin()
    _origin.set(Origin(name, now.ip if ip is None else ip,
                       now.user_agent if user_agent is None else user_agent))


def current_origin() -> Origin:
    """The surface (and client) the current task's changes are attributed to
    (an empty name if unset)."""
    now = _origin.get()  # not "or": an origin with a client but no name yet is falsy
    return _UNSET if now is None else now


def client_of(origin_name: str) -> tuple[str | None, str | None]:
    """(client address, user agent) an origin carries; None for what it does not."""
    if isinstance(origin_name, Origin):
        return origin_name.ip or None, origin_name.user_agent or None
    return None, None


@dataclass(frozen=True)
class Event:
    """One committed change.

    ``account_id`` is the account the event belongs to (the bucket's owner for
    object and bucket events), so its webhooks receive it whoever made the
    change; ``actor`` is the account that made it when that is known.
    ``data`` carries the payload fields of the event's type: ``bucket``,
    ``key``, ``size``, ``contentType`` for object events, and so on.
    """

    type: EventType
    account_id: str
    data: Mapping[str, Any]
    origin: str = ""
    actor: str = ""
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Every PutObject of a secondary process gets its events back over the
        # write relay (storage/write_relay.py) in a pickle.  By default one
        # names four classes (the event's, its type's, its origin's, and its
        # time's timezone), and each name a pickle carries costs an import
        # lookup to write.  As plain values, a list of one event pickled and
        # unpickled in 77,000 instructions instead of 106,000 (cachegrind).
        origin = self.origin
        client = (origin.ip, origin.user_agent) if isinstance(origin, Origin) else None
        return (_unpickle_event, (str(self.type), self.account_id, self.data, str(origin),
                                  client, self.actor, self.at.isoformat()))

    def payload(self) -> dict[str, Any]:
        """The document webhooks send: ``{event, timestamp, data}``."""
        return {
            "event": str(self.type),
            "timestamp": self.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "data": dict(self.data),
        }


def _unpickle_event(etype: str, account_id: str, data: Mapping[str, Any], origin: str,
                    client: tuple[str, str] | None, actor: str, at: str) -> Event:
    return Event(EventType(etype), account_id, data,
                 Origin(origin, *client) if client is not None else origin, actor,
                 datetime.fromisoformat(at))


def object_data(bucket: str, key: str, size: int, content_type: str) -> dict[str, Any]:
    """The payload of an object event, as the product documents show it."""
    return {"bucket": bucket, "key": key, "size": size, "contentType": content_type}


def team_member_events(
    etype: EventType, audience: Iterable[str], team_id: str, user_id: str, role: str,
    actor: str, origin_name: str,
) -> list[Event]:
    """One ``team.member_added`` / ``team.member_removed`` event per account
    of ``audience`` (the team's admins and the member concerned: the accounts
    whose webhooks and audit logs should see a membership change)."""
    now = datetime.now(UTC)
    data = {"teamId": team_id, "userId": user_id, "role": role}
    return [Event(etype, account, data, origin=origin_name, actor=actor, at=now)
            for account in dict.fromkeys(audience)]


_INSERT = ('INSERT INTO events (type, account_id, bucket, "key", data, origin, actor, '
           "created_at, ip_address, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


# One encoder for every event: json.dumps with separators builds a new one
# per call, a sixth of the event insert's Python time.
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


def record_steps(events: list[Event]) -> sql.UnitOfWork[None]:
    """Write ``events`` into the outbox (a step of the change's own unit of work),
    with the client their :class:`Origin` carries."""
    if not events:
        return
    rows = [(str(e.type), e.account_id, e.data.get("bucket"), e.data.get("key"),
             _compact_json(dict(e.data)), str(e.origin), e.actor, e.at,
             *client_of(e.origin))
            for e in events]
    if len(rows) == 1:
        # Nothing reads the outbox row in the same unit: on PostgreSQL it
        # rides with the unit's next statement (a PutObject's charge).
        yield (sql.DEFER, _INSERT, rows[0])
    else:
        yield (sql.MANY, _INSERT, rows)


async def record(conn: Any, events: list[Event]) -> None:
    """:func:`record_steps` on an ORM connection (inside the change's transaction)."""
    await sql.drive(conn, record_steps(events))


def quota_crossing(
    account_id: str, used_after: int, delta: int, quota: int, origin_name: str
) -> Event | None:
    """quota.warning if adding ``delta`` bytes took usage up through
    :data:`QUOTA_WARNING_RATIO` of ``quota``; None otherwise."""
    if delta <= 0 or quota <= 0:
        return None
    threshold = math.ceil(quota * QUOTA_WARNING_RATIO)
    if used_after - delta < threshold <= used_after:
        return Event(EventType.QUOTA_WARNING, account_id, {
            "usedBytes": used_after, "quotaBytes": quota,
            "percent": round(100 * used_after / quota, 1),
        }, origin=origin_name)
    return None


# quota.exceeded is recorded when a write is refused for the quota, at most
# this often per account (a client retrying a refused upload would otherwise
# flood the receivers).
QUOTA_EXCEEDED_GAP = timedelta(hours=1)


def quota_exceeded_steps(account_id: str, origin_name: str) -> sql.UnitOfWork[Event | None]:
    """Record quota.exceeded for ``account_id`` unless one was recorded within
    :data:`QUOTA_EXCEEDED_GAP`; the event recorded, or None."""
    now = datetime.now(UTC)
    recent = yield (sql.FETCH,
                    "SELECT 1 FROM events WHERE account_id = ? AND type = ? AND created_at > ? "
                    "LIMIT 1",
                    (account_id, str(EventType.QUOTA_EXCEEDED), now - QUOTA_EXCEEDED_GAP))
    if recent:
        return None
    usage = yield (sql.FETCH, "SELECT used_bytes, quota_bytes FROM accounts WHERE id = ?",
                   (account_id,))
    if not usage:
        return None
    used, quota = int(usage[0]["used_bytes"]), int(usage[0]["quota_bytes"])
    event = Event(EventType.QUOTA_EXCEEDED, account_id, {
        "usedBytes": used, "quotaBytes": quota,
        "percent": round(100 * used / quota, 1) if quota else 100.0,
    }, origin=origin_name, at=now)
    yield from record_steps([event])
    return event


Subscriber = Callable[[Event], None]


class EventBus:
    """This node's in-process fan-out of committed events.

    Subscribers are called synchronously in the publishing task and must not
    block (the trace appends to a bounded buffer); durable consumers read the
    outbox table instead.
    """

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Call ``fn`` for every event from now on; returns the unsubscribe function."""
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn)

    def publish(self, events: list[Event]) -> None:
        """Hand committed ``events`` to every subscriber."""
        for event in events:
            for fn in list(self._subscribers):
                fn(event)
