"""The operator's view of webhooks (issue 17): ``GET /admin/v1/webhooks`` and the
console's ``webhooks`` screen, against a real node delivering to a real receiver."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from admin_tui.app import AdminApp
from admin_tui.screens import WebhooksScreen
from tests.admin.conftest import console_token, validate
from tests.admin.test_admin_api import _poll
from tests.admin.test_console import SIZE, command, rows, until
from tests.harness import NodeProcess, started_node
from tests.rest.conftest import signup
from tests.rest.test_webhooks import NODE_EXTRA, create_hook, s3_client
from tests.rest.webhook_support import receiver

PATH = "/admin/v1/webhooks"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A node that may deliver to loopback receivers, with fast retries."""
    with started_node(tmp_path_factory.mktemp("adminhooks"), NODE_EXTRA) as n:
        yield n


@pytest.fixture(scope="module")
def delivered(node: NodeProcess) -> Iterator[dict[str, Any]]:
    """A user's webhook that has received one ``object.created`` (answered 202)."""
    user = signup(node)
    with receiver() as rec:
        rec.status, rec.body = 202, b"accepted-by-test"
        hook = create_hook(user, rec.url, ["object.created"])
        s3_client(node, user).put_object(Bucket=user.bucket, Key="a.txt", Body=b"hello")
        rec.wait_for(lambda got: len(got) == 1)
        yield {"hook": hook, "email": user.email, "account_id": user.account_id}
    user.client.close()


def _admin(node: NodeProcess) -> httpx.Client:
    return httpx.Client(base_url=node.web_url, timeout=10,
                        headers={"Authorization": f"Bearer {console_token(node)}"})


def test_listing_needs_the_admin_token(node: NodeProcess) -> None:
    # The endpoint lives in a nested blueprint: the parent's token check must cover it.
    missing = httpx.get(f"{node.web_url}{PATH}")
    assert missing.status_code == 401
    assert validate(missing, PATH)["error"] == "Unauthorized"
    wrong = httpx.get(f"{node.web_url}{PATH}", headers={"Authorization": "Bearer csadm_nope"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "Unauthorized"


def test_listing_shows_the_delivery_with_its_response_code(
        node: NodeProcess, delivered: dict[str, Any]) -> None:
    hook_id = delivered["hook"]["id"]
    with _admin(node) as client:
        def finished() -> dict[str, Any] | None:
            body = validate(client.get(PATH), PATH)
            hook = next(w for w in body["webhooks"] if w["id"] == hook_id)
            done = hook["deliveries"] and hook["deliveries"][0]["status"] == "succeeded"
            return hook if done else None

        hook = _poll(finished, "the delivery to be logged as succeeded")
        assert hook["account_email"] == delivered["email"]
        assert hook["account_id"] == delivered["account_id"]
        assert hook["url"] == delivered["hook"]["url"] and hook["events"] == ["object.created"]
        assert hook["active"] is True and hook["failures"] == 0
        [d] = hook["deliveries"]
        assert d["event_type"] == "object.created" and d["attempts"] == 1
        assert d["response_code"] == 202 and d["duration_ms"] is not None
        assert d["response_body"].startswith("accepted-by-test") and d["error"] == ""

        # Bounded: the limit params are honoured and bad ones are clear 400s.
        assert len(validate(client.get(PATH, params={"limit": 1}), PATH)["webhooks"]) == 1
        none = validate(client.get(PATH, params={"deliveries": 0}), PATH)
        assert all(w["deliveries"] == [] for w in none["webhooks"])
        for bad in ({"limit": 0}, {"limit": "x"}, {"deliveries": 21}):
            r = client.get(PATH, params=bad)
            assert r.status_code == 400 and validate(r, PATH)["error"] == "InvalidArgument"


@pytest.mark.asyncio
async def test_console_shows_the_webhook_and_its_delivery(
        node: NodeProcess, delivered: dict[str, Any]) -> None:
    app = AdminApp(node.web_url, console_token(node))
    async with app.run_test(size=SIZE) as pilot:
        await command(pilot, "webhooks")
        assert isinstance(app.screen, WebhooksScreen)
        hooks = await until(pilot, lambda: [r for r in rows(app, "webhooks")
                                            if r[0] == delivered["email"]
                                            and r[4] == "succeeded"], "webhook row", 30)
        [hook] = hooks
        assert hook[1] == delivered["hook"]["url"] and hook[2] == "yes" and hook[3] == "0"
        assert hook[5] == "202" and hook[6] != "-"
        await pilot.press("down", "up")  # the cursor is on the (only) webhook row
        [delivery] = await until(pilot, lambda: rows(app, "deliveries"), "delivery row")
        assert delivery[1:4] == ["object.created", "succeeded", "202"]
        assert delivery[5] == "1" and delivery[6].startswith("accepted-by-test")
        await command(pilot, "wh")  # alias: stays on the same screen
        assert isinstance(app.screen, WebhooksScreen)
