"""Billing with Stripe: plans that set an account's quota.

The plans are the product documents' (1tb, 5tb, 10tb, 25tb, 50tb at $5, $25,
$50, $125, $250 a month); a plan's quota is its size in TiB, and the free
plan is the configured ``accounts.default_quota``.  Stripe is the source of
truth of what an account pays for: the quota follows the subscription as
Stripe reports it (signed webhooks, and the answer of a plan change).

- Checkout: a Stripe Checkout session for the plan's price, on the
  account's Stripe customer (created on first use).
- Upgrade: the subscription's price changes at once, prorated; the quota
  follows immediately.
- Downgrade: the new price applies from the next period without proration;
  the plan already paid for is kept (``billing_customers.kept_plan`` and
  ``kept_until``) so its quota stays until the period ends (the renewal's
  ``customer.subscription.updated`` then brings the smaller quota).  Usage
  above the smaller quota deletes nothing: uploads are refused with
  QuotaExceeded until usage fits.
- Payment failed: recorded (status ``past_due``); the quota stays until
  Stripe itself ends the subscription (``customer.subscription.deleted`` or a
  status of ``unpaid``/``canceled``), then it falls back to the free quota.

Each webhook event is applied once: its id goes into ``stripe_events`` in the
transaction that applies it, so a second delivery, to any node, changes
nothing.  The ``stripe`` client blocks, so every call runs in a worker thread.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import stripe
import trio
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from config.settings import BillingSettings
from storage import errors, sql
from storage.accounts import AccountInfo
from storage.db import Database
from storage.models import Account, BillingCustomer, StripeEvent

T = TypeVar("T")
TIB = 1024**4


@dataclass(frozen=True)
class Plan:
    """A paid plan: its name, quota and monthly price (cents)."""

    name: str
    quota_bytes: int
    monthly_cents: int


PLANS: dict[str, Plan] = {p.name: p for p in (
    Plan("1tb", 1 * TIB, 500),
    Plan("5tb", 5 * TIB, 2500),
    Plan("10tb", 10 * TIB, 5000),
    Plan("25tb", 25 * TIB, 12500),
    Plan("50tb", 50 * TIB, 25000),
)}
FREE = "free"
# Subscription states in which the plan is paid for (past_due: Stripe is
# still retrying the payment).
LIVE_STATUSES = frozenset({"active", "trialing", "past_due"})


class BillingNotConfigured(errors.StorageError):
    """Billing is not configured on this cluster (no Stripe secret key)."""

    code = "BillingNotConfigured"
    kind = errors.Kind.UNAVAILABLE


class BillingProviderError(errors.StorageError):
    """The payment provider did not answer as expected; please retry later."""

    code = "BillingProviderError"
    kind = errors.Kind.UNAVAILABLE


class InvalidPlan(errors.StorageError):
    """The plan must be one of 1tb, 5tb, 10tb, 25tb, 50tb."""

    code = "InvalidPlan"
    kind = errors.Kind.INVALID


class NoSubscription(errors.StorageError):
    """You have no subscription: start one with POST /api/billing."""

    code = "NoSubscription"
    kind = errors.Kind.NOT_FOUND


class AlreadySubscribed(errors.StorageError):
    """You already have a subscription: change it with POST /api/billing/change."""

    code = "AlreadySubscribed"
    kind = errors.Kind.CONFLICT


class SamePlan(errors.StorageError):
    """You are already on this plan."""

    code = "SamePlan"
    kind = errors.Kind.CONFLICT


class InvalidSignature(errors.StorageError):
    """The webhook signature is missing, invalid or too old."""

    code = "InvalidSignature"
    kind = errors.Kind.INVALID


@dataclass(frozen=True)
class PlanChange:
    """The answer of a plan change."""

    immediate: bool
    current_period_end: datetime | None


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """A field of a Stripe object or a plain dict (webhook payloads)."""
    try:
        value = obj[name]
    except (KeyError, TypeError, IndexError):
        return default
    return default if value is None else value


def _first_item(sub: Any) -> Any:
    items = _get(_get(sub, "items", {}), "data", [])
    return items[0] if items else {}


def period_end(sub: Any) -> datetime | None:
    """The end of the subscription's current period (on the item since
    Stripe's 2025 API versions, on the subscription before)."""
    return _ts(_get(_first_item(sub), "current_period_end")
               or _get(sub, "current_period_end"))


class Billing:
    """Stripe checkout, plan changes, portal, details and webhooks for accounts."""

    def __init__(self, settings: BillingSettings, db: Database, *, default_quota: int) -> None:
        self._s = settings
        self._db = db
        self._default_quota = default_quota
        self._client: stripe.StripeClient | None = None
        if settings.stripe_secret_key:
            base = {"api": settings.stripe_api_base} if settings.stripe_api_base else None
            self._client = stripe.StripeClient(settings.stripe_secret_key,
                                               base_addresses=base,  # type: ignore[arg-type]
                                               max_network_retries=1)
        self._prices = {name: getattr(settings, f"price_{name}") for name in PLANS}

    @property
    def configured(self) -> bool:
        """Whether a Stripe secret key is configured."""
        return self._client is not None

    def require(self) -> None:
        """BillingNotConfigured unless a Stripe secret key is configured."""
        self._stripe()

    # -- plumbing -------------------------------------------------------------------------

    def _stripe(self) -> stripe.StripeClient:
        if self._client is None:
            raise BillingNotConfigured()
        return self._client

    async def _call(self, fn: Callable[..., T], **params: Any) -> T:
        """``fn(params=...)`` of the blocking Stripe client, in a worker thread."""
        try:
            return await trio.to_thread.run_sync(functools.partial(fn, params=params))
        except stripe.StripeError as exc:
            raise BillingProviderError(
                f"Stripe refused the request: {exc.user_message or exc.code or 'error'}"
            ) from exc

    def price_of(self, plan: str) -> str:
        """The Stripe price id of ``plan`` (InvalidPlan if unknown or unpriced)."""
        price = self._prices.get(plan)
        if not price:
            raise InvalidPlan()
        return price

    def plan_of_price(self, price_id: str) -> str | None:
        """The plan a Stripe price id stands for (None if none)."""
        for name, price in self._prices.items():
            if price and price == price_id:
                return name
        return None

    def quota_of(self, plan: str) -> int:
        """The quota of ``plan`` (the default quota for the free plan)."""
        return PLANS[plan].quota_bytes if plan in PLANS else self._default_quota

    async def _record(self, account_id: str) -> BillingCustomer | None:
        async def q() -> BillingCustomer | None:
            return await BillingCustomer.get_or_none(account_id=account_id)

        return await self._db.run(q)

    async def _customer(self, account: AccountInfo) -> str:
        """The account's Stripe customer id, created on first use."""
        found = await self._record(account.id)
        if found is not None:
            return found.customer_id
        customer = await self._call(self._stripe().v1.customers.create, email=account.email,
                                    metadata={"account_id": account.id})

        async def insert() -> str:
            try:
                row = await BillingCustomer.create(
                    account_id=account.id, customer_id=customer.id,
                    updated_at=datetime.now(UTC))
                return row.customer_id
            except IntegrityError:  # a concurrent request created one first
                return (await BillingCustomer.get(account_id=account.id)).customer_id

        return await sql.retry(lambda: self._db.run(insert))

    # -- what the dashboard calls --------------------------------------------------------

    async def checkout(self, account: AccountInfo, plan: str) -> str:
        """The URL of a Stripe Checkout session subscribing the account to ``plan``."""
        price = self.price_of(plan)
        record = await self._record(account.id)
        if record is not None and record.subscription_id and record.status in LIVE_STATUSES:
            raise AlreadySubscribed()
        customer = await self._customer(account)
        session = await self._call(
            self._stripe().v1.checkout.sessions.create, mode="subscription",
            customer=customer, line_items=[{"price": price, "quantity": 1}],
            success_url=self._s.success_url, cancel_url=self._s.cancel_url,
            client_reference_id=account.id,
            metadata={"account_id": account.id, "plan": plan},
            subscription_data={"metadata": {"account_id": account.id}},
        )
        return str(session.url)

    async def change(self, account: AccountInfo, plan: str) -> PlanChange:
        """Move the subscription to ``plan``: an upgrade now (prorated), a
        downgrade at the end of the paid period."""
        price = self.price_of(plan)
        sub = await self._retrieve_subscription(account.id)
        item = _first_item(sub)
        current = self.plan_of_price(_get(_get(item, "price", {}), "id", ""))
        if current == plan:
            raise SamePlan()
        upgrade = current is None or PLANS[plan].quota_bytes > PLANS[current].quota_bytes
        end = period_end(sub)
        # Upgrades are prorated now; a downgrade is billed from the next
        # period, and the plan paid for is kept until then.
        behavior = "create_prorations" if upgrade else "none"
        kept = ("", None) if upgrade else (current or "", end)
        updated = await self._call(
            functools.partial(self._stripe().v1.subscriptions.update, _get(sub, "id")),
            items=[{"id": _get(item, "id"), "price": price}], proration_behavior=behavior)
        await self._apply_now(account.id, updated, kept)
        return PlanChange(immediate=upgrade, current_period_end=period_end(updated) or end)

    async def portal(self, account: AccountInfo) -> str:
        """The URL of a Stripe billing-portal session for the account."""
        customer = await self._customer(account)
        session = await self._call(self._stripe().v1.billing_portal.sessions.create,
                                   customer=customer, return_url=self._s.return_url)
        return str(session.url)

    async def details(self, account: AccountInfo) -> dict[str, Any]:
        """Subscription, invoices, upcoming invoice and payment method, as the
        product documents show them (null where there is none)."""
        self._stripe()
        record = await self._record(account.id)
        out: dict[str, Any] = {"subscription": None, "invoices": [],
                               "upcomingInvoice": None, "paymentMethod": None}
        if record is None:
            return out
        if record.subscription_id:
            out["subscription"] = {
                "plan": record.plan, "status": record.status,
                "currentPeriodEnd": _iso(record.current_period_end),
            }
        client = self._stripe()
        invoices = await self._call(client.v1.invoices.list, customer=record.customer_id,
                                    limit=12)
        out["invoices"] = [
            {"id": inv.id, "amount": _get(inv, "amount_due", _get(inv, "total", 0)),
             "status": _get(inv, "status", ""), "date": _day(_get(inv, "created"))}
            for inv in invoices.data
        ]
        if record.subscription_id and record.status in LIVE_STATUSES:
            upcoming = await self._call(client.v1.invoices.create_preview,
                                        customer=record.customer_id,
                                        subscription=record.subscription_id)
            out["upcomingInvoice"] = {
                "amount": _get(upcoming, "amount_due", _get(upcoming, "total", 0)),
                "date": _day(_get(upcoming, "next_payment_attempt")
                             or _get(upcoming, "period_end")
                             or _get(upcoming, "created")),
            }
        out["paymentMethod"] = await self._payment_method(record.customer_id)
        return out

    async def _payment_method(self, customer_id: str) -> dict[str, Any] | None:
        client = self._stripe()
        customer = await self._call(functools.partial(client.v1.customers.retrieve, customer_id))
        default = _get(_get(customer, "invoice_settings", {}), "default_payment_method")
        pm: Any
        if isinstance(default, str):
            pm = await self._call(functools.partial(client.v1.payment_methods.retrieve, default))
        else:
            listed = await self._call(client.v1.payment_methods.list, customer=customer_id,
                                      type="card", limit=1)
            pm = listed.data[0] if listed.data else None
        if pm is None:
            return None
        card = _get(pm, "card", {})
        return {"type": _get(pm, "type", "card"), "last4": _get(card, "last4", ""),
                "brand": _get(card, "brand", "")}

    async def _retrieve_subscription(self, account_id: str) -> Any:
        record = await self._record(account_id)
        if record is None or not record.subscription_id or record.status not in LIVE_STATUSES:
            raise NoSubscription()
        return await self._call(functools.partial(self._stripe().v1.subscriptions.retrieve,
                                                  record.subscription_id))

    # -- webhooks ------------------------------------------------------------------------

    def verify(self, payload: bytes, signature: str) -> Any:
        """The Stripe event of a signed webhook body; InvalidSignature otherwise
        (unsigned, forged, or older than the tolerance: a replay)."""
        self._stripe()
        if not self._s.stripe_webhook_secret:
            raise BillingNotConfigured("No Stripe webhook secret is configured.")
        try:
            return stripe.Webhook.construct_event(
                payload, signature, self._s.stripe_webhook_secret,
                tolerance=self._s.webhook_tolerance_seconds)
        except stripe.SignatureVerificationError:
            raise InvalidSignature() from None
        except ValueError:
            raise InvalidSignature("The webhook body is not a Stripe event.") from None

    async def handle_event(self, event: Any) -> bool:
        """Apply a verified Stripe event once; False if it was applied before."""
        event_id, kind = str(_get(event, "id", "")), str(_get(event, "type", ""))
        obj = _get(_get(event, "data", {}), "object", {})
        if not event_id:
            raise InvalidSignature("The event has no id.")

        async def tx() -> bool:
            async with in_transaction():
                try:
                    await StripeEvent.create(id=event_id, type=kind[:64],
                                             processed_at=datetime.now(UTC))
                except IntegrityError:
                    return False  # applied already, here or on another node
                await self._apply_event(kind, obj)
                return True

        return await sql.retry(lambda: self._db.run(tx))

    async def _apply_now(self, account_id: str, sub: Any,
                         kept: tuple[str, datetime | None]) -> None:
        """Apply a subscription Stripe just answered with (a plan change),
        keeping ``kept`` (plan, until) as the plan already paid for."""

        async def tx() -> None:
            async with in_transaction():
                await BillingCustomer.filter(account_id=account_id).update(
                    kept_plan=kept[0], kept_until=kept[1])
                await self._apply_subscription(sub, deleted=False)

        await sql.retry(lambda: self._db.run(tx))

    async def _apply_event(self, kind: str, obj: Any) -> None:
        """Change the database as the event says (runs on the bridge, in a transaction)."""
        if kind in ("customer.subscription.created", "customer.subscription.updated"):
            await self._apply_subscription(obj, deleted=False)
        elif kind == "customer.subscription.deleted":
            await self._apply_subscription(obj, deleted=True)
        elif kind == "invoice.payment_failed":
            customer = _get(obj, "customer")
            if customer:
                await BillingCustomer.filter(customer_id=customer).update(
                    status="past_due", updated_at=datetime.now(UTC))
        # Other events (checkout.session.completed, invoice.paid, ...) change
        # nothing here: the subscription events that follow them carry the state.

    async def _apply_subscription(self, sub: Any, *, deleted: bool) -> None:
        customer = _get(sub, "customer")
        if isinstance(customer, dict):
            customer = customer.get("id")
        record = await BillingCustomer.get_or_none(customer_id=customer)
        if record is None:
            return  # not one of our customers
        sub_id = _get(sub, "id")
        if record.subscription_id and record.subscription_id != sub_id and deleted:
            return  # an older subscription ended; the current one stands
        status = "canceled" if deleted else str(_get(sub, "status", ""))
        item = _first_item(sub)
        plan = self.plan_of_price(str(_get(_get(item, "price", {}), "id", ""))) or FREE
        effective = plan if status in LIVE_STATUSES else FREE
        if not deleted:
            effective = _kept_plan(record.kept_plan, record.kept_until, effective)
        await BillingCustomer.filter(account_id=record.account_id).update(  # type: ignore[attr-defined]
            subscription_id=sub_id, plan=effective, status=status,
            current_period_end=period_end(sub), updated_at=datetime.now(UTC))
        await Account.filter(id=record.account_id).update(  # type: ignore[attr-defined]
            plan=effective, quota_bytes=self.quota_of(effective))


def _kept_plan(kept: str, until: datetime | None, plan: str) -> str:
    """``kept``, the plan paid for until ``until``, while that lasts and it is
    larger than ``plan``; else ``plan``."""
    if kept not in PLANS or until is None:
        return plan
    if until.tzinfo is None:  # naive UTC from some backends
        until = until.replace(tzinfo=UTC)
    if datetime.now(UTC) >= until:
        return plan
    if plan in PLANS and PLANS[plan].quota_bytes >= PLANS[kept].quota_bytes:
        return plan
    return kept


def _iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(value: Any) -> str | None:
    moment = _ts(value)
    return moment.strftime("%Y-%m-%d") if moment else None

