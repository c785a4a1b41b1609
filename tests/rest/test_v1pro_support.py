"""Helpers of the v1-pro tests (no tests here): Pro users and their keys."""

from __future__ import annotations

from typing import Any

import httpx

from tests.harness import NodeProcess
from tests.rest.conftest import User, signup


def admin_patch(node: NodeProcess, account_id: str, **fields: Any) -> None:
    """Change an account through the admin API (plan, status)."""
    token = node.settings.console_token_file().read_text().strip()
    r = httpx.patch(f"{node.web_url}/admin/v1/accounts/{account_id}", json=fields,
                    headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200, r.text


def new_key(user: User, **body: Any) -> dict[str, Any]:
    """Create a csb_live_ key through the session-authenticated panel route."""
    r = user.client.post("/api/v1pro/keys", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def pro_user(node: NodeProcess, plan: str = "pro", **key: Any) -> tuple[User, str]:
    """A signed-up user on ``plan`` with one key (all scopes unless given)."""
    user = signup(node)
    if plan != "free":
        admin_patch(node, user.account_id, plan=plan)
    return user, new_key(user, name="My script", **key)["key"]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
