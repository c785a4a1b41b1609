"""The delivery queue's units of work on SQLite and PostgreSQL: idempotent
fan-out, one claimant per lease, stale owners ignored, auto-disable, pruning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage import outbound
from storage import webhooks as wh
from storage.buckets import BucketService
from storage.crypto import SecretBox

pytestmark = pytest.mark.trio

LEASE = timedelta(seconds=30)


@pytest.fixture
async def hook(core):
    policy = outbound.OutboundPolicy(allow_private=True)
    service = wh.WebhookService(core.db, SecretBox(b"test-cluster-secret-0123456789"), policy)
    info, secret = await service.create(core.account_id, "http://127.0.0.1:9/hook",
                                        ["bucket.created", "bucket.deleted"])
    return service, info, secret


async def fanout(core, now=None) -> tuple[int, bool]:
    return await core.db.write(wh.fanout_steps, now or datetime.now(UTC), 100)


async def claim(core, node: str, now=None) -> list[wh.Claimed]:
    return await core.db.write(wh.claim_steps, node, now or datetime.now(UTC), LEASE, 10)


def failed() -> wh.Outcome:
    return wh.Outcome(False, 500, 3, "no", "the receiver answered 500")


async def test_fanout_is_idempotent_and_filters(core, hook):
    buckets = BucketService(core.db)
    await buckets.create(core.account_id, "one")
    other = await core.accounts.create_account("other@example.com", "correct horse")
    await buckets.create(other.id, "theirs")  # another account's event: not delivered
    assert await fanout(core) == (1, False)
    assert await fanout(core) == (0, False)
    (got,) = await claim(core, "n1")
    assert got.event is not None and got.event.data["bucket"] == "one"
    assert wh.body_of(got.event).startswith(b'{"event":"bucket.created","timestamp":"')


async def test_one_claimant_per_lease_and_stale_owner_ignored(core, hook):
    await BucketService(core.db).create(core.account_id, "bkt")
    await fanout(core)
    (first,) = await claim(core, "n1")
    assert first.attempt == 1
    assert await claim(core, "n2") == []  # leased to n1
    later = datetime.now(UTC) + LEASE + timedelta(seconds=1)
    (second,) = await claim(core, "n2", later)  # n1 died: the lease ran out
    assert (second.id, second.attempt) == (first.id, 2)
    ok = wh.Outcome(True, 200, 5, "ok", "")
    # n1 comes back and reports late: its result is not recorded.
    assert await core.db.write(wh.finish_steps, first, "n1", ok, later, None, 10) is False
    await core.db.write(wh.finish_steps, second, "n2", ok, later, None, 10)
    service, info, _ = hook
    (row,) = await service.deliveries(core.account_id, info.id)
    assert (row["status"], row["attempts"], row["response_code"]) == ("succeeded", 2, 200)
    assert await claim(core, "n3", later + LEASE * 2) == []


async def test_failures_disable_and_reenable_resets(core, hook):
    service, info, _ = hook
    buckets = BucketService(core.db)
    for i in range(4):
        await buckets.create(core.account_id, f"bkt{i}")
    await fanout(core)
    now = datetime.now(UTC)
    disabled = False
    for _ in range(3):
        for c in await claim(core, "n1", now):
            retry = now + timedelta(seconds=1)
            disabled |= await core.db.write(wh.finish_steps, c, "n1", failed(), now, retry, 3)
        now += timedelta(seconds=2)
    assert disabled
    (state,) = await service.list_for(core.account_id)
    assert not state.active and state.failures >= 3 and "3 consecutive" in state.disabled_reason
    assert await claim(core, "n1", now + timedelta(hours=1)) == []  # nothing for a disabled hook
    again = await service.update(core.account_id, info.id, active=True)
    assert again.active and again.failures == 0 and again.disabled_reason == ""
    assert await claim(core, "n1", now + timedelta(hours=1))  # pending ones resume


async def test_prune_keeps_the_newest_log_rows_and_recent_events(core, hook):
    service, info, _ = hook
    buckets = BucketService(core.db)
    for i in range(5):
        await buckets.create(core.account_id, f"pru{i}")
    await fanout(core)
    now = datetime.now(UTC)
    for c in await claim(core, "n1", now):
        await core.db.write(wh.finish_steps, c, "n1", wh.Outcome(True, 204, 1, "", ""), now,
                            None, 10)
    await core.db.write(wh.prune_steps, now, timedelta(days=1), timedelta(days=1), 2)
    assert len(await service.deliveries(core.account_id, info.id)) == 2
    # A year later every finished log row and every passed event goes.
    later = now + timedelta(days=400)
    removed = await core.db.write(wh.prune_steps, later, timedelta(days=365),
                                  timedelta(days=30), 100)
    assert removed >= 2
    assert await service.deliveries(core.account_id, info.id) == []


async def test_cursor_waits_for_a_missing_id_then_passes_it() -> None:
    now = datetime.now(UTC)
    fresh = [{"id": 11, "created_at": now}, {"id": 13, "created_at": now}]
    assert wh._advance(10, fresh, now) == 11  # 12 may still commit
    old = now - wh.GAP_GRACE - timedelta(seconds=1)
    aged = [{"id": 11, "created_at": old}, {"id": 13, "created_at": old}]
    assert wh._advance(10, aged, now) == 13  # 12 rolled back long ago
