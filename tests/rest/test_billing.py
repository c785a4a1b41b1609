"""Billing against a stateful Stripe fake (localstripe behind a small proxy,
tests/stripe_fake): checkout, signed webhooks setting plan and quota,
upgrade/downgrade answers, details, portal, and refused forgeries."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from tests.harness import NodeProcess, prepare_node, started_node
from tests.rest.conftest import User, signup
from tests.stripe_fake import SECRET_KEY, WEBHOOK_SECRET, StripeFake, sign

TIB = 1024**4
PRICES = {"1tb": 500, "5tb": 2500, "10tb": 5000, "25tb": 12500, "50tb": 25000}


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeFake]:
    f = StripeFake(tmp_path_factory.mktemp("stripe"))
    f.start()
    try:
        client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": f.api_base})
        product = client.v1.products.create(params={"name": "Storage"})
        for plan, cents in PRICES.items():
            # localstripe's plans are Stripe's prices of the same ids.
            httpx.post(f"{f.api_base}/v1/plans", auth=(SECRET_KEY, ""), data={
                "id": f"price_{plan}", "amount": cents, "currency": "usd",
                "interval": "month", "product": product.id}).raise_for_status()
        yield f
    finally:
        f.stop()


def billing_config(fake: StripeFake) -> str:
    """Config lines: relaxed dashboard limits and [billing] pointing at the fake."""
    prices = "".join(f'price_{p} = "price_{p}"\n' for p in PRICES)
    return ('[accounts]\ndashboard_requests_per_minute = 1000\nlogin_attempts_per_minute = 200\n'
            f'[billing]\nstripe_secret_key = "{SECRET_KEY}"\n'
            f'stripe_webhook_secret = "{WEBHOOK_SECRET}"\nstripe_api_base = "{fake.api_base}"\n'
            + prices)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, fake: StripeFake) -> Iterator[NodeProcess]:
    with started_node(tmp_path_factory.mktemp("billingnode"), billing_config(fake)) as n:
        yield n


def stripe_client(fake: StripeFake) -> stripe.StripeClient:
    return stripe.StripeClient(SECRET_KEY, base_addresses={"api": fake.api_base})


def deliver(node: NodeProcess, event: dict[str, Any], *, signature: str | None = None,
            ) -> httpx.Response:
    payload = json.dumps(event)
    return httpx.post(f"{node.web_url}/api/billing/webhook", content=payload, headers={
        "Content-Type": "application/json",
        "Stripe-Signature": sign(payload) if signature is None else signature})


def event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"id": "evt_" + secrets.token_hex(12), "object": "event", "type": kind,
            "created": int(time.time()), "data": {"object": obj}}


def subscription_json(fake: StripeFake, sub_id: str) -> dict[str, Any]:
    r = httpx.get(f"{fake.api_base}/v1/subscriptions/{sub_id}", auth=(SECRET_KEY, ""))
    r.raise_for_status()
    return r.json()


def complete_checkout(fake: StripeFake, user: User, plan: str) -> str:
    """What Stripe does when the user pays on the Checkout page: a card on the
    customer, the subscription; returns the subscription id."""
    session = next(s for s in reversed(fake.checkout_sessions)
                   if s["client_reference_id"] == user.account_id)
    assert session["form"]["line_items[0][price]"] == f"price_{plan}"
    customer = session["customer"]
    client = stripe_client(fake)
    pm = client.v1.payment_methods.create(params={"type": "card", "card": {
        "number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
    client.v1.payment_methods.attach(pm.id, params={"customer": customer})
    client.v1.customers.update(customer, params={
        "invoice_settings": {"default_payment_method": pm.id}})
    sub = client.v1.subscriptions.create(params={"customer": customer,
                                                 "items": [{"price": f"price_{plan}"}]})
    return sub.id


def me(user: User) -> dict[str, Any]:
    return user.client.get("/api/auth/me").json()["user"]


def subscribe(node: NodeProcess, fake: StripeFake, user: User, plan: str) -> str:
    r = user.client.post("/api/billing", json={"planName": plan})
    assert r.status_code == 200, r.text
    assert r.json()["url"].startswith("https://checkout.stripe.test/c/pay/cs_test_")
    sub_id = complete_checkout(fake, user, plan)
    r = deliver(node, event("customer.subscription.created", subscription_json(fake, sub_id)))
    assert r.status_code == 200, r.text
    return sub_id


def test_checkout_then_webhook_sets_plan_and_quota(node: NodeProcess, fake: StripeFake) -> None:
    user = signup(node)
    free_quota = me(user)["quotaBytes"]
    sub_id = subscribe(node, fake, user, "5tb")
    assert (me(user)["plan"], me(user)["quotaBytes"]) == ("5tb", 5 * TIB)
    # Already subscribed: a second checkout is refused.
    again = user.client.post("/api/billing", json={"planName": "1tb"})
    assert again.status_code == 409 and again.json()["error"] == "AlreadySubscribed"
    # The subscription ends: back to the free quota; the same event twice is
    # applied once (a later re-subscription is not undone by the replay).
    ended = event("customer.subscription.deleted", subscription_json(fake, sub_id))
    assert deliver(node, ended).json() == {"received": True, "duplicate": False}
    assert (me(user)["plan"], me(user)["quotaBytes"]) == ("free", free_quota)
    created = event("customer.subscription.created", subscription_json(fake, sub_id))
    assert deliver(node, created).status_code == 200
    assert me(user)["plan"] == "5tb"
    assert deliver(node, ended).json() == {"received": True, "duplicate": True}
    assert (me(user)["plan"], me(user)["quotaBytes"]) == ("5tb", 5 * TIB)


def test_upgrade_now_downgrade_at_period_end(node: NodeProcess, fake: StripeFake) -> None:
    user = signup(node)
    subscribe(node, fake, user, "5tb")
    r = user.client.post("/api/billing/change", json={"planName": "10tb"})
    assert r.status_code == 200, r.text
    assert r.json() == {"success": True, "effective": "immediate", "prorated": True}
    assert (me(user)["plan"], me(user)["quotaBytes"]) == ("10tb", 10 * TIB)
    r = user.client.post("/api/billing/change", json={"planName": "1tb"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["effective"] == "end_of_period"
    assert body["currentPeriodEnd"].endswith("Z") and set(body) == {
        "success", "effective", "currentPeriodEnd"}
    # Paid for until the period ends: the quota stays, even when Stripe
    # reports the subscription's new price.
    assert (me(user)["plan"], me(user)["quotaBytes"]) == ("10tb", 10 * TIB)
    sub_id = fake_sub_of(fake, user)
    deliver(node, event("customer.subscription.updated", subscription_json(fake, sub_id)))
    assert me(user)["quotaBytes"] == 10 * TIB
    same = user.client.post("/api/billing/change", json={"planName": "1tb"})
    assert same.status_code == 409 and same.json()["error"] == "SamePlan"
    bad = user.client.post("/api/billing/change", json={"planName": "2tb"})
    assert bad.status_code == 400 and bad.json()["error"] == "InvalidPlan"


def fake_sub_of(fake: StripeFake, user: User) -> str:
    customer = next(s["customer"] for s in fake.checkout_sessions
                    if s["client_reference_id"] == user.account_id)
    subs = httpx.get(f"{fake.api_base}/v1/subscriptions", params={"customer": customer},
                     auth=(SECRET_KEY, "")).json()["data"]
    return subs[0]["id"]


def test_details_portal_and_payment_failed(node: NodeProcess, fake: StripeFake) -> None:
    user = signup(node)
    empty = user.client.get("/api/billing/details").json()
    assert empty == {"subscription": None, "invoices": [], "upcomingInvoice": None,
                     "paymentMethod": None}
    subscribe(node, fake, user, "5tb")
    d = user.client.get("/api/billing/details")
    assert d.status_code == 200, d.text
    d = d.json()
    assert d["subscription"]["plan"] == "5tb" and d["subscription"]["status"] == "active"
    assert d["subscription"]["currentPeriodEnd"].endswith("Z")
    assert d["invoices"] and set(d["invoices"][0]) == {"id", "amount", "status", "date"}
    assert d["invoices"][0]["amount"] == 2500 and d["invoices"][0]["status"] == "paid"
    assert d["upcomingInvoice"]["amount"] == 2500 and d["upcomingInvoice"]["date"]
    assert d["paymentMethod"] == {"type": "card", "last4": "4242", "brand": "visa"}
    portal = user.client.post("/api/billing/portal")
    assert portal.status_code == 200, portal.text
    assert portal.json()["url"].startswith("https://billing.stripe.test/p/session/")
    customer = fake.portal_sessions[-1]["customer"]
    failed = event("invoice.payment_failed", {"id": "in_x", "object": "invoice",
                                              "customer": customer})
    assert deliver(node, failed).status_code == 200
    d = user.client.get("/api/billing/details").json()
    assert d["subscription"]["status"] == "past_due"
    # Still paid for while Stripe retries: the quota stays.
    assert me(user)["quotaBytes"] == 5 * TIB


def test_forged_unsigned_and_replayed_webhooks_are_refused(node: NodeProcess,
                                                          fake: StripeFake) -> None:
    user = signup(node)
    subscribe(node, fake, user, "1tb")
    sub = subscription_json(fake, fake_sub_of(fake, user))
    ended = event("customer.subscription.deleted", sub)
    payload = json.dumps(ended)
    forged = sign(payload, secret="whsec_not_the_secret")
    old = sign(payload, at=int(time.time()) - 3600)
    for signature in (forged, "", old, "t=1,v1=deadbeef"):
        r = deliver(node, ended, signature=signature)
        assert r.status_code == 400 and r.json()["error"] == "InvalidSignature", r.text
    assert me(user)["plan"] == "1tb"
    junk = httpx.post(f"{node.web_url}/api/billing/webhook", content=b"not json",
                      headers={"Stripe-Signature": sign("not json")})
    assert junk.status_code == 400


def test_billing_not_configured(tmp_path: Path) -> None:
    with started_node(tmp_path) as n:
        user = signup(n)
        for method, path in (("POST", "/api/billing"), ("POST", "/api/billing/change"),
                             ("POST", "/api/billing/portal"), ("GET", "/api/billing/details"),
                             ("POST", "/api/billing/webhook")):
            r = user.client.request(method, path, json={"planName": "1tb"})
            assert r.status_code == 503, r.text
            assert r.json()["error"] == "BillingNotConfigured"
        assert user.client.get("/api/auth/me").status_code == 200


@pytest.mark.postgres
def test_an_event_delivered_to_two_nodes_is_applied_once(pg_url: str, tmp_path: Path,
                                                         fake: StripeFake) -> None:
    extra = ("bootstrap_expect = 2\n[storage]\nreplication_factor = 2\nwrite_quorum = 1\n"
             + billing_config(fake))
    nodes = [prepare_node(tmp_path / nid, pg_url, nid, secret_file=tmp_path / "cluster.secret",
                          extra=extra) for nid in ("node1", "node2")]
    for n in nodes:
        n.start()
    try:
        user = signup(nodes[0])
        sub_id = subscribe(nodes[0], fake, user, "10tb")
        ended = event("customer.subscription.deleted", subscription_json(fake, sub_id))
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda n: deliver(n, ended), nodes * 2))
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
        assert sorted(r.json()["duplicate"] for r in answers) == [False, True, True, True]
        assert me(user)["plan"] == "free"
    finally:
        for n in nodes:
            n.stop()
