"""Account passwords: right, wrong, unknown, none set."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.trio


async def test_check_password(core):
    owner = await core.accounts.check_password("OWNER@example.com ", "correct horse")
    assert owner is not None and owner.id == core.account_id  # email normalised
    assert await core.accounts.check_password("owner@example.com", "wrong") is None
    assert await core.accounts.check_password("nobody@example.com", "correct horse") is None
    keys_only = await core.accounts.create_account("keys@example.com")  # operator-made
    assert await core.accounts.check_password(keys_only.email, "") is None
    assert await core.accounts.check_password(keys_only.email, "anything") is None
