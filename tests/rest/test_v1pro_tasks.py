"""The v1-pro tables on SQLite and PostgreSQL: import task leases (one
claimer wins, a lapsed lease is claimed again, too many interruptions end in
failed, a cancel stops renewals) and csb_live_ keys (hash-only, limit,
revocation)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import trio

from storage import api_keys
from storage.api_keys import ApiKeyService, TooManyApiKeys
from storage.imports import CANCELLED, COMPLETED, FAILED, ImportTasks
from storage.models import ApiKey

pytestmark = pytest.mark.trio


async def make_task(core, tasks: ImportTasks) -> str:
    bucket = await core.buckets.create(core.account_id, "imports-test")
    return await tasks.create(core.account_id, "file", "https://example.com/a.bin",
                              bucket.name, "a.bin")


async def test_one_claimer_wins_and_lapsed_leases_are_reclaimed(core) -> None:
    tasks = ImportTasks(core.db)
    task_id = await make_task(core, tasks)
    won: list[str] = []

    async def claim(node: str) -> None:
        if await tasks.claim(node, 60, 3) is not None:
            won.append(node)

    async with trio.open_nursery() as nursery:
        for node in ("n1", "n2", "n3", "n4"):
            nursery.start_soon(claim, node)
    assert len(won) == 1
    assert await tasks.claim("n2", 60, 3) is None  # leased

    assert await tasks.renew(task_id, won[0], -1, 10, 100)  # the lease lapses now
    again = await tasks.claim("n2", 60, 3)
    assert again is not None and again.attempts == 2
    assert not await tasks.renew(task_id, won[0], 60, 20, 100)  # no longer its task
    assert await tasks.renew(task_id, "n2", 60, 50, 100)
    assert (await tasks.get(core.account_id, task_id)).progress() == "50%"
    assert await tasks.finish(task_id, "n2", COMPLETED, "", 100)
    done = await tasks.get(core.account_id, task_id)
    assert done.state == COMPLETED and done.progress() == "100%"
    assert await tasks.get("someone-else", task_id) is None


async def test_interrupted_tasks_fail_and_cancel_stops_renewals(core) -> None:
    tasks = ImportTasks(core.db)
    task_id = await make_task(core, tasks)
    for attempt in range(2):
        claimed = await tasks.claim(f"n{attempt}", 60, 2)
        assert claimed is not None
        await tasks.renew(task_id, f"n{attempt}", -1, 0, None)  # its node died
    assert await tasks.claim("n9", 60, 2) is None
    failed = await tasks.get(core.account_id, task_id)
    assert failed.state == FAILED and "interrupted 2 times" in failed.error

    other = await tasks.create(core.account_id, "file", "https://example.com/b", "imports-test",
                               "b")
    assert await tasks.claim("n1", 60, 3) is not None
    cancelled = await tasks.cancel(core.account_id, other)
    assert cancelled is not None and cancelled.state == CANCELLED
    assert not await tasks.renew(other, "n1", 60, 5, None)
    assert not await tasks.finish(other, "n1", COMPLETED)
    assert (await tasks.get(core.account_id, other)).state == CANCELLED
    assert await tasks.cancel(core.account_id, "file_unknown") is None


async def test_api_keys_hash_limit_and_revocation(core) -> None:
    keys = ApiKeyService(core.db, max_keys=3)
    new = await keys.create(core.account_id, "ci", ["read", "upload"],
                            datetime.now(UTC) + timedelta(days=1))
    assert new.key.startswith("csb_live_") and new.info.scopes == ("upload", "read")
    found = await keys.resolve(new.key)
    assert found is not None and found[0].id == new.info.id
    assert found[1].id == core.account_id and not found[0].expired()

    async def stored() -> list[str]:
        return [k.key_hash for k in await ApiKey.all()]

    assert await core.db.run(stored) == [api_keys.hash_key(new.key)]  # never the key
    await keys.create(core.account_id)
    await keys.create(core.account_id)
    with pytest.raises(TooManyApiKeys):
        await keys.create(core.account_id)
    with pytest.raises(api_keys.InvalidScopes):
        await keys.create(core.account_id, scopes=["admin"])
    assert await keys.revoke(core.account_id, new.info.id)
    assert await keys.resolve(new.key) is None
    assert not await keys.revoke(core.account_id, new.info.id)
    assert len(await keys.list(core.account_id)) == 2
