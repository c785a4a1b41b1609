"""Webhooks: endpoints that receive an account's events, and their delivery queue.

Delivery reads the events outbox (:mod:`storage.events`): every committed
change is a row of ``events`` written in the change's own transaction, so an
event exists exactly when its change does.  The node's delivery worker
(``cluster/delivery.py``) runs three units of work from here:

* :func:`fanout_steps` reads events after a shared cursor and creates one
  ``webhook_deliveries`` row per matching active webhook, unique per
  (webhook, event) -- any node may fan out, a repeated pass adds nothing.
  On PostgreSQL ids are taken when a transaction inserts, not when it
  commits, so a lower id can appear after a higher one was read: the cursor
  only moves over ids it has seen contiguously, or past a gap once the
  event after it is :data:`GAP_GRACE` old (a transaction still open that
  long has rolled back in practice).
* :func:`claim_steps` leases due deliveries to one node with a conditional
  UPDATE (``lease_until < now``): exactly one node sends each attempt, and
  a node killed mid-delivery hands its rows over when the lease expires.
* :func:`finish_steps` records the outcome: success, a retry with
  exponential backoff, or failure once the retries are spent; every failed
  attempt counts toward the webhook's consecutive failures, and the webhook
  is disabled at the limit (PATCH ``active: true`` re-enables it and resets
  the count; deliveries still pending resume then).

Delivery is at least once: a receiver may see an event twice (a node killed
after sending, before recording) and deduplicates by the event id header.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from storage import errors, outbound, sql
from storage.crypto import SecretBox, new_id
from storage.db import Database
from storage.events import TEAM_TYPES, Event, EventType
from storage.models import Webhook, WebhookDelivery

SECRET_PREFIX = "whsec_"
# Every core event type; seed 000's list leaves out team membership, which
# only v2-drive's webhooks subscribe to (storage/drive_webhooks.py).
ALL_TYPES = tuple(str(t) for t in EventType)
EVENT_TYPES = tuple(t for t in ALL_TYPES if t not in TEAM_TYPES)
# Payload formats of webhooks whose id has a registered prefix (a REST
# dialect's own, e.g. v2-drive's "whd"): (event, event id, secret) -> body.
Formatter = Callable[[Event, int, str], Awaitable[bytes]]
FORMATS: dict[str, Formatter] = {}
CURSOR = "webhooks"
# How long the fan-out waits for an event id that is missing below newer ones.
GAP_GRACE = timedelta(seconds=30)
# Bytes of a receiver's answer kept in the delivery log.
BODY_PREFIX = 256

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"


class NoSuchWebhook(errors.StorageError):
    """The specified webhook does not exist."""

    code = "NoSuchWebhook"
    kind = errors.Kind.NOT_FOUND


class InvalidWebhook(errors.StorageError):
    """The webhook definition is not valid."""

    code = "InvalidWebhook"
    kind = errors.Kind.INVALID


class TooManyWebhooks(errors.StorageError):
    """The account has as many webhooks as it may have."""

    code = "TooManyWebhooks"
    kind = errors.Kind.LIMIT


@dataclass(frozen=True)
class WebhookInfo:
    """A webhook as its owner sees it (never the secret)."""

    id: str
    account_id: str
    url: str
    events: tuple[str, ...]
    active: bool
    failures: int
    disabled_reason: str
    created_at: datetime


def as_datetime(value: Any) -> datetime:
    """A timestamp column as an aware datetime (SQLite hands back text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _info(w: Webhook) -> WebhookInfo:
    return WebhookInfo(w.id, w.account_id, w.url,  # type: ignore[attr-defined]
                       tuple(w.events or ()), bool(w.active), w.failures,
                       w.disabled_reason, as_datetime(w.created_at))


def check_events(value: Any, known: Sequence[str] = EVENT_TYPES) -> list[str]:
    """A non-empty list of ``known`` event names, deduplicated in order."""
    if not isinstance(value, list) or not value:
        raise InvalidWebhook("events: must be a non-empty list of event names")
    unknown = [v for v in value if v not in known]
    if unknown:
        raise InvalidWebhook(f"events: unknown event {str(unknown[0])[:64]!r} "
                             f"(known: {', '.join(known)})")
    return list(dict.fromkeys(value))


class WebhookService:
    """Create, list, change and delete an account's webhooks; read their logs."""

    def __init__(self, db: Database, box: SecretBox, policy: outbound.OutboundPolicy, *,
                 max_per_account: int = 20) -> None:
        self._db = db
        self._box = box
        self._policy = policy
        self._max = max_per_account

    def secret_of(self, webhook_id: str, sealed: str) -> str:
        """The signing secret of a webhook from its sealed column."""
        return self._box.open(sealed, webhook_id)

    async def _check_url(self, url: Any) -> str:
        if not isinstance(url, str):
            raise InvalidWebhook("url: must be a string")
        try:
            await outbound.check_url(url, self._policy)
        except outbound.OutboundRefused as exc:
            raise InvalidWebhook(exc.message) from None
        return url

    async def create(self, account_id: str, url: Any, events: Any, *, id_prefix: str = "wh",
                     secret: str | None = None,
                     known: Sequence[str] = EVENT_TYPES) -> tuple[WebhookInfo, str]:
        """A new active webhook and its secret (shown to the owner only now;
        ``secret`` when the caller chose it, ``id_prefix`` selects a format,
        ``known`` the event types its format subscribes to)."""
        names = check_events(events, known)
        url = await self._check_url(url)
        hook_id = new_id(id_prefix, 12)
        secret = secret or SECRET_PREFIX + secrets.token_urlsafe(32)
        sealed = self._box.seal(secret, hook_id)
        limit = self._max

        async def tx() -> Webhook:
            if await Webhook.filter(account_id=account_id).count() >= limit:
                raise TooManyWebhooks(f"An account can have up to {limit} webhooks.")
            return await Webhook.create(id=hook_id, account_id=account_id, url=url,
                                        events=names, secret_enc=sealed, active=True,
                                        created_at=datetime.now(UTC))

        return _info(await self._db.run(tx)), secret

    async def list_for(self, account_id: str) -> list[WebhookInfo]:
        """The account's webhooks, oldest first."""

        async def q() -> list[Webhook]:
            return await Webhook.filter(account_id=account_id).order_by("created_at", "id")

        return [_info(w) for w in await self._db.run(q)]

    async def update(self, account_id: str, hook_id: str, *, url: Any = None,
                     events: Any = None, active: Any = None) -> WebhookInfo:
        """Change the URL, the events or the active flag; re-enabling resets
        the failure count."""
        changes: dict[str, Any] = {}
        if url is not None:
            changes["url"] = await self._check_url(url)
        if events is not None:
            changes["events"] = check_events(events)
        if active is not None:
            if not isinstance(active, bool):
                raise InvalidWebhook("active: must be true or false")
            changes["active"] = active
            if active:
                changes.update(failures=0, disabled_reason="")

        async def tx() -> Webhook:
            hook = await Webhook.get_or_none(id=hook_id, account_id=account_id)
            if hook is None:
                raise NoSuchWebhook()
            if changes:
                await Webhook.filter(id=hook_id).update(**changes)
                hook = await Webhook.get(id=hook_id)
            return hook

        return _info(await sql.retry(lambda: self._db.run(tx)))

    async def delete(self, account_id: str, hook_id: str) -> None:
        """Delete a webhook with its queue and log."""

        async def tx() -> int:
            return await Webhook.filter(id=hook_id, account_id=account_id).delete()

        if not await sql.retry(lambda: self._db.run(tx)):
            raise NoSuchWebhook()

    async def deliveries(self, account_id: str, hook_id: str, limit: int = 100
                         ) -> list[dict[str, Any]]:
        """The webhook's delivery log, newest first."""

        async def q() -> list[dict[str, Any]]:
            if not await Webhook.exists(id=hook_id, account_id=account_id):
                raise NoSuchWebhook()
            return await (WebhookDelivery.filter(webhook_id=hook_id).order_by("-id")
                          .limit(limit).values())

        return await self._db.run(q)


# -- the delivery queue: units of work run by cluster/delivery.py -----------------------


async def hooked_accounts(fetch: Any, dialect: str) -> set[str]:
    """Accounts with at least one active webhook (a :meth:`Database.read` unit)."""
    rows = await fetch("SELECT DISTINCT account_id FROM webhooks WHERE active = "
                       + ("$1" if dialect == "postgres" else "?"), [True])
    return {r["account_id"] for r in rows}


_INSERT_DELIVERY = (
    "INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, status, attempts, "
    "next_attempt_at, lease_owner, response_body, error, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (webhook_id, event_id) DO NOTHING"
)


def _open_cursor(now: datetime) -> sql.UnitOfWork[int | None]:
    """The cursor's position, its row locked; created the first time just
    before the first event of the oldest webhook's time (no webhook: after
    the newest event), so an upgraded cluster does not replay its past."""
    # A write first: SQLite takes its write lock up front, PostgreSQL locks
    # the row so fan-outs of several nodes take turns instead of racing.
    rows = yield (sql.FETCH, "UPDATE outbox_cursors SET updated_at = ? WHERE name = ? "
                  "RETURNING event_id", (now, CURSOR))
    if not rows:
        rows = yield (sql.FETCH,
                      "INSERT INTO outbox_cursors (name, event_id, updated_at) VALUES "
                      "(?, COALESCE((SELECT MAX(id) FROM events WHERE created_at < "
                      "COALESCE((SELECT MIN(created_at) FROM webhooks), ?)), 0), ?) "
                      "ON CONFLICT (name) DO NOTHING RETURNING event_id",
                      (CURSOR, now + timedelta(days=1), now))
    return int(rows[0]["event_id"]) if rows else None


def _advance(cursor: int, rows: Sequence[Mapping[str, Any]], now: datetime) -> int:
    """How far the cursor may move over ``rows`` (ascending ids)."""
    for row in rows:
        if row["id"] != cursor + 1 and as_datetime(row["created_at"]) > now - GAP_GRACE:
            break  # a lower id may still commit: wait for it (or for the grace)
        cursor = row["id"]
    return cursor


def fanout_steps(now: datetime, batch: int) -> sql.UnitOfWork[tuple[int, bool]]:
    """Create the deliveries of up to ``batch`` events after the cursor.

    Returns (deliveries created, whether more events are ready at once)."""
    cursor = yield from _open_cursor(now)
    if cursor is None:
        return 0, False
    events = yield (sql.FETCH, "SELECT id, account_id, type, created_at FROM events "
                    "WHERE id > ? ORDER BY id LIMIT ?", (cursor, batch))
    if not events:
        return 0, False
    hooks = yield (sql.FETCH, "SELECT id, account_id, events, created_at FROM webhooks "
                   "WHERE active = ?", (True,))
    by_account: dict[str, list[tuple[str, set[str], datetime]]] = {}
    for h in hooks:
        by_account.setdefault(h["account_id"], []).append(
            (h["id"], set(sql.json_column(h["events"], [])), as_datetime(h["created_at"])))
    rows = [
        (hook_id, e["id"], e["type"], PENDING, 0, now, "", "", "", now, now)
        for e in events
        for hook_id, wanted, since in by_account.get(e["account_id"], ())
        # A webhook gets the events of changes made after it was created.
        if e["type"] in wanted and as_datetime(e["created_at"]) >= since
    ]
    if rows:
        yield (sql.MANY, _INSERT_DELIVERY, rows)
    moved = _advance(cursor, events, now)
    if moved != cursor:
        yield (sql.EXECUTE, "UPDATE outbox_cursors SET event_id = ? WHERE name = ?",
               (moved, CURSOR))
    return len(rows), len(events) == batch and moved == events[-1]["id"]


@dataclass(frozen=True)
class Claimed:
    """A delivery attempt this node holds the lease of, with what sending needs."""

    id: int
    attempt: int
    webhook_id: str
    url: str
    secret_enc: str
    event_id: int
    event: Event | None  # None when the event was pruned before it was sent


def _event_of(row: Mapping[str, Any]) -> Event:
    return Event(EventType(row["type"]), row["account_id"], sql.json_column(row["data"], {}),
                 origin=row["origin"], actor=row["actor"], at=as_datetime(row["created_at"]))


def _in(ids: Sequence[Any]) -> str:
    return ", ".join("?" for _ in ids)


def claim_steps(node: str, now: datetime, lease: timedelta, limit: int
                ) -> sql.UnitOfWork[list[Claimed]]:
    """Lease up to ``limit`` due deliveries of active webhooks to ``node``."""
    # The outer conditions are evaluated again on a row another node changed
    # meanwhile (PostgreSQL re-checks them after the row lock): one claimant.
    claimed = yield (sql.FETCH,
                     "UPDATE webhook_deliveries SET lease_until = ?, lease_owner = ?, "
                     "attempts = attempts + 1, updated_at = ? WHERE id IN (SELECT d.id FROM "
                     "webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id "
                     "WHERE d.status = ? AND d.next_attempt_at <= ? AND w.active = ? AND "
                     "(d.lease_until IS NULL OR d.lease_until < ?) ORDER BY d.id LIMIT ?) "
                     "AND status = ? AND (lease_until IS NULL OR lease_until < ?) "
                     "RETURNING id, webhook_id, event_id, attempts",
                     (now + lease, node, now, PENDING, now, True, now, limit, PENDING, now))
    if not claimed:
        return []
    hook_ids = sorted({r["webhook_id"] for r in claimed})
    hooks = yield (sql.FETCH, f"SELECT id, url, secret_enc FROM webhooks WHERE id IN "
                   f"({_in(hook_ids)})", hook_ids)
    event_ids = sorted({r["event_id"] for r in claimed})
    evs = yield (sql.FETCH, "SELECT id, type, account_id, data, origin, actor, created_at "
                 f"FROM events WHERE id IN ({_in(event_ids)})", event_ids)
    hook_by_id = {h["id"]: h for h in hooks}
    event_by_id = {e["id"]: _event_of(e) for e in evs}
    out = []
    for r in sorted(claimed, key=lambda r: r["id"]):
        hook = hook_by_id.get(r["webhook_id"])
        if hook is not None:  # deleted meanwhile: its rows went with it
            out.append(Claimed(r["id"], int(r["attempts"]), r["webhook_id"], hook["url"],
                               hook["secret_enc"], r["event_id"], event_by_id.get(r["event_id"])))
    return out


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt gave."""

    ok: bool
    status_code: int | None
    duration_ms: int
    body_prefix: str
    error: str


def finish_steps(claim: Claimed, node: str, result: Outcome, now: datetime,
                 retry_at: datetime | None, disable_after: int) -> sql.UnitOfWork[bool]:
    """Record an attempt (if this node still holds the lease); True if it
    disabled the webhook."""
    status = SUCCEEDED if result.ok else (PENDING if retry_at is not None else FAILED)
    done = yield (sql.EXECUTE,
                  "UPDATE webhook_deliveries SET status = ?, next_attempt_at = ?, "
                  "lease_until = NULL, lease_owner = '', response_code = ?, duration_ms = ?, "
                  "response_body = ?, error = ?, updated_at = ? WHERE id = ? AND lease_owner = ?",
                  (status, retry_at or now, result.status_code, result.duration_ms,
                   result.body_prefix, result.error[:500], now, claim.id, node))
    if not done:
        return False  # the lease ran out and another node took the row over
    if result.ok:
        yield (sql.EXECUTE, "UPDATE webhooks SET failures = 0 WHERE id = ? AND failures <> 0",
               (claim.webhook_id,))
        return False
    rows = yield (sql.FETCH, "UPDATE webhooks SET failures = failures + 1 WHERE id = ? "
                  "RETURNING failures, active", (claim.webhook_id,))
    if rows and rows[0]["active"] and int(rows[0]["failures"]) >= disable_after:
        yield (sql.EXECUTE, "UPDATE webhooks SET active = ?, disabled_reason = ? WHERE id = ?",
               (False, f"disabled after {disable_after} consecutive failed deliveries",
                claim.webhook_id))
        return True
    return False


def prune_steps(now: datetime, keep_events: timedelta | None, keep_log: timedelta,
                log_per_webhook: int) -> sql.UnitOfWork[int]:
    """Drop finished deliveries past ``keep_log`` or beyond the newest
    ``log_per_webhook`` of their webhook, and events older than
    ``keep_events`` that the fan-out has passed; rows removed."""
    removed = yield (sql.EXECUTE,
                     "DELETE FROM webhook_deliveries WHERE status <> ? AND (updated_at < ? OR "
                     "id < (SELECT d.id FROM webhook_deliveries d WHERE d.webhook_id = "
                     "webhook_deliveries.webhook_id AND d.status <> ? ORDER BY d.id DESC "
                     "LIMIT 1 OFFSET ?))",
                     (PENDING, now - keep_log, PENDING, max(log_per_webhook - 1, 0)))
    if keep_events is not None:
        # Below the cursor only (never the newest id: SQLite would reuse it).
        removed += yield (sql.EXECUTE,
                          "DELETE FROM events WHERE created_at < ? AND id < "
                          "(SELECT event_id FROM outbox_cursors WHERE name = ?)",
                          (now - keep_events, CURSOR))
    return removed


def body_of(event: Event) -> bytes:
    """The exact bytes sent (and signed): compact JSON, as ``JSON.stringify``
    of the parsed body gives, so receivers that re-serialise still verify."""
    return json.dumps(event.payload(), separators=(",", ":"), ensure_ascii=False).encode()
