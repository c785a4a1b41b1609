"""The webhook delivery worker of one node (see storage/webhooks.py).

Every node runs it; the database decides who does what: fan-out is
idempotent, and each attempt is leased to exactly one node.  A pass fans new
events out, then sends every due delivery it can claim, a few at a time.  A
committed change on this node wakes the worker at once (the event bus);
changes made on other nodes are found by the periodic pass.

Each attempt is one POST through :mod:`storage.outbound` (the SSRF-safe
client: the resolved address is checked at connect time), signed with the
webhook's secret: ``X-CloudStorage-Signature`` is the hex HMAC-SHA256 of the
exact body bytes.  ``X-CloudStorage-Event-Id`` identifies the event (the
same on every attempt, for deduplication), ``X-CloudStorage-Delivery`` the
delivery and ``X-CloudStorage-Attempt`` the attempt (1 = first).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta

import trio

from cluster.workers import Worker
from config import Settings
from protocols import VERSION
from storage import outbound, sql
from storage import webhooks as wh
from storage.crypto import SecretBox
from storage.db import Database
from storage.events import Event, EventBus

# Deliveries claimed (and sent concurrently) at once, and fan-out batch size.
CLAIM_BATCH = 16
FANOUT_BATCH = 500
# A pass stops after this many rounds, so one busy pass cannot run forever.
MAX_ROUNDS = 50
PRUNE_EVERY = 3600.0


def signature(secret: str, body: bytes) -> str:
    """The ``X-CloudStorage-Signature`` of ``body``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookDelivery:
    """Fans events out to webhooks and delivers them, as a :class:`Worker`."""

    def __init__(self, settings: Settings, db: Database, bus: EventBus) -> None:
        self.node = settings.node.id
        self.config = settings.webhooks
        self.db = db
        self.box = SecretBox(settings.cluster_secret())
        self.policy = outbound.OutboundPolicy.from_settings(settings)
        self._last_prune = 0.0
        # Accounts with an active webhook, as of the last pass (None: unknown).
        self._hooked: set[str] | None = None
        self.worker = Worker("webhooks", self.config.poll_seconds, self.run_pass,
                             description="deliver events to webhooks; prune old events")
        bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        # A change committed here is sent at once, not at the next poll; only
        # for accounts with webhooks, so a busy node without any does not run
        # a pass per write.
        if self._hooked is None or event.account_id in self._hooked:
            self.worker.trigger()

    async def run_pass(self, worker: Worker) -> None:
        """Fan out, deliver what is due, and prune once in a while."""
        self._hooked = await self.db.read(wh.hooked_accounts)
        created = sent = 0
        for _ in range(MAX_ROUNDS):
            n, more = await sql.retry(lambda: self.db.write(
                wh.fanout_steps, datetime.now(UTC), FANOUT_BATCH))
            created += n
            if not more:
                break
        lease = timedelta(seconds=self.config.lease_seconds)
        for _ in range(MAX_ROUNDS):
            await worker.checkpoint()
            claimed = await sql.retry(lambda: self.db.write(
                wh.claim_steps, self.node, datetime.now(UTC), lease, CLAIM_BATCH))
            if not claimed:
                break
            async with trio.open_nursery() as nursery:
                for claim in claimed:
                    nursery.start_soon(self.deliver, claim)
            sent += len(claimed)
        worker.progress.update(fanned_out=worker.progress.get("fanned_out", 0) + created,
                               attempts=worker.progress.get("attempts", 0) + sent)
        if time.monotonic() - self._last_prune > PRUNE_EVERY:
            await self.prune()

    async def prune(self) -> int:
        """Drop old delivery logs and old events (configured retention)."""
        self._last_prune = time.monotonic()
        days = self.config.event_retention_days
        return await sql.retry(lambda: self.db.write(
            wh.prune_steps, datetime.now(UTC),
            timedelta(days=days) if days > 0 else None,
            timedelta(days=self.config.log_retention_days), self.config.log_per_webhook))

    async def attempt(self, claim: wh.Claimed) -> wh.Outcome:
        """Send one attempt; never raises for the receiver's faults."""
        started = time.monotonic()
        if claim.event is None:
            return wh.Outcome(False, None, 0, "", "the event was pruned before delivery")
        try:
            secret = self.box.open(claim.secret_enc, claim.webhook_id)
        except ValueError as exc:
            return wh.Outcome(False, None, 0, "", str(exc))
        fmt = wh.FORMATS.get(claim.webhook_id.split("_", 1)[0])
        body = (await fmt(claim.event, claim.event_id, secret) if fmt is not None
                else wh.body_of(claim.event))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"cloudstorage-webhooks/{VERSION}",
            "X-CloudStorage-Signature": signature(secret, body),
            "X-CloudStorage-Event": str(claim.event.type),
            "X-CloudStorage-Event-Id": f"evt_{claim.event_id}",
            "X-CloudStorage-Delivery": f"dlv_{claim.id}",
            "X-CloudStorage-Attempt": str(claim.attempt),
            "X-CloudStorage-Timestamp": claim.event.payload()["timestamp"],
        }
        code: int | None = None
        prefix = b""
        error = ""
        with trio.move_on_after(self.config.timeout_seconds) as scope:
            try:
                async with outbound.open(claim.url, self.policy, method="POST",
                                         headers=headers, content=body) as resp:
                    code = resp.status
                    prefix = await resp.read_prefix(wh.BODY_PREFIX)
            except (outbound.OutboundRefused, outbound.OutboundFailed) as exc:
                error = exc.message
        if scope.cancelled_caught:
            error = f"no answer within {self.config.timeout_seconds:g} s"
        ms = int((time.monotonic() - started) * 1000)
        ok = code is not None and 200 <= code < 300 and not error
        if code is not None and not ok and not error:
            error = f"the receiver answered {code}"
        return wh.Outcome(ok, code, ms, prefix.decode("utf-8", "replace"), error)

    async def deliver(self, claim: wh.Claimed) -> None:
        """One attempt, recorded: retried with backoff, then given up."""
        result = await self.attempt(claim)
        now = datetime.now(UTC)
        retry_at = None
        if not result.ok and claim.attempt <= self.config.retries:
            # Exponential backoff: base, 2x base, 4x base, ...
            retry_at = now + timedelta(
                seconds=self.config.retry_base_seconds * 2 ** (claim.attempt - 1))
        disabled = await sql.retry(lambda: self.db.write(
            wh.finish_steps, claim, self.node, result, now, retry_at,
            self.config.disable_after_failures))
        if disabled:
            print(f"[{self.node}] webhook {claim.webhook_id} disabled after "
                  f"{self.config.disable_after_failures} consecutive failures", flush=True)
