"""PostgreSQL reads on their own connections (storage/pg_direct.py's _Readers):
at most READ_CONNECTIONS at once, the rest wait for one; a read cut off
mid-statement leaves no broken connection behind."""

from __future__ import annotations

import pytest
import trio

from storage import pg_direct
from tests.storage.test_pg_group_commit import ADVISORY_KEY, _hold_advisory_lock, _release

pytestmark = [pytest.mark.trio, pytest.mark.postgres]


@pytest.fixture
def db_url(pg_url: str) -> str:
    return pg_url


async def _blocked_read(fetch, dialect):
    # Waits for the advisory lock the test holds, then lets it go at once.
    await fetch("SELECT pg_advisory_lock($1)", (ADVISORY_KEY,))
    await fetch("SELECT pg_advisory_unlock($1)", (ADVISORY_KEY,))
    return "read"


async def _backend(fetch, dialect):
    rows = await fetch("SELECT pg_backend_pid() AS pid", ())
    return rows[0]["pid"]


async def _waiting_sessions(conn) -> int:
    # Asked on the lock holder's own connection: every reader may be taken.
    return int(await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query LIKE '%pg_advisory_lock%' AND pid <> pg_backend_pid()"))


async def test_reads_beyond_the_connections_wait_for_one(core, pg_url):
    holder = await core.db.bridge.run(_hold_advisory_lock, pg_url)
    results: list[str] = []
    extra = 3

    async def read() -> None:
        results.append(await core.db.read(_blocked_read))

    async def waiting() -> int:
        return await core.db.bridge.run(_waiting_sessions, holder)

    async with trio.open_nursery() as nursery:
        for _ in range(pg_direct.READ_CONNECTIONS + extra):
            nursery.start_soon(read)
        with trio.fail_after(10):
            while await waiting() < pg_direct.READ_CONNECTIONS:
                await trio.sleep(0.01)
        # The other reads queue for a connection rather than opening more.
        for _ in range(20):
            await trio.sleep(0.005)
        assert await waiting() == pg_direct.READ_CONNECTIONS
        assert results == []
        await core.db.bridge.run(_release, holder)
    assert results == ["read"] * (pg_direct.READ_CONNECTIONS + extra)


async def test_a_read_cancelled_mid_statement_leaves_no_broken_connection(core, pg_url):
    holder = await core.db.bridge.run(_hold_advisory_lock, pg_url)
    with trio.move_on_after(0.3) as scope:
        await core.db.read(_blocked_read)
    assert scope.cancelled_caught
    await core.db.bridge.run(_release, holder)
    # Every connection reads again, the one cut off replaced by a new one.
    async with trio.open_nursery() as nursery:
        for _ in range(pg_direct.READ_CONNECTIONS * 3):
            nursery.start_soon(core.db.read, _backend)
    with trio.fail_after(10):
        assert await core.db.read(_backend) > 0
