"""PostgreSQL group commit (storage/pg_direct.py): units of work that queue
while a group is in flight share the next transaction, each in a savepoint.

A unit that fails -- a condition, a deadlock -- rolls back alone; the others
of its group commit, and the usage and chunk references they change are
counted exactly once.  Groups are made deterministic by holding the writer
on an advisory lock that another connection owns while the units queue.
"""

from __future__ import annotations

import functools

import pytest
import trio

from storage import errors, pg_direct, sql
from storage.objects import WriteCondition
from tests.storage.test_objects import put, read

pytestmark = [pytest.mark.trio, pytest.mark.postgres]

ADVISORY_KEY = 424242


@pytest.fixture(autouse=True)
def one_writer(monkeypatch) -> None:
    """One writer, so that holding it makes the units queue for one group."""
    monkeypatch.setattr(pg_direct, "WRITERS", 1)


@pytest.fixture
def db_url(pg_url: str) -> str:
    """Group commit on the raw connections is PostgreSQL's path."""
    return pg_url


def _blocked_unit():
    """A unit of work that waits for the advisory lock (held by the test)."""
    yield (sql.FETCH, "SELECT pg_advisory_xact_lock(?)", (ADVISORY_KEY,))


async def _hold_advisory_lock(url: str):
    import asyncpg

    conn = await asyncpg.connect(url)
    await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_KEY)
    return conn


async def _release(conn) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_KEY)
    await conn.close()


async def _wait_until(predicate, what: str, seconds: float = 10) -> None:
    with trio.move_on_after(seconds):
        while not predicate():
            await trio.sleep(0.005)
        return
    raise AssertionError(f"timed out waiting until {what}")


async def _usage(core) -> tuple[int, int]:
    rows = await core.db.read(_account_usage, core.account_id)
    return int(rows[0]["used_bytes"]), int(rows[0]["object_count"])


async def _account_usage(fetch, dialect, account_id):
    return await fetch("SELECT used_bytes, object_count FROM accounts WHERE id = $1",
                       [account_id])


async def _refcount(fetch, dialect, chunk_id):
    rows = await fetch("SELECT refcount FROM chunk_refs WHERE chunk_id = $1", [chunk_id])
    return rows[0]["refcount"]


class _Group:
    """Queue units behind a held writer, in order, then let them run as one group."""

    def __init__(self, core, url: str, nursery: trio.Nursery) -> None:
        self.core, self.url, self.nursery = core, url, nursery
        self.pg = core.db._pg  # the node's raw PostgreSQL path
        self.results: dict[str, object] = {}

    async def __aenter__(self) -> _Group:
        self.lock = await self.core.db.bridge.run(_hold_advisory_lock, self.url)
        before = self.pg.groups
        self.nursery.start_soon(self.core.db.write, _blocked_unit)
        # The blocking unit's group has started once it is counted and nothing waits.
        await _wait_until(lambda: self.pg.groups > before and not self.pg.waiting,
                          "the writer is held")
        self.groups_before = self.pg.groups
        return self

    async def queue(self, name: str, operation) -> None:
        """Start ``operation`` and wait until its unit is queued (keeps the order)."""
        queued = self.pg.waiting

        async def run() -> None:
            try:
                self.results[name] = await operation()
            except Exception as exc:
                self.results[name] = exc

        self.nursery.start_soon(run)
        await _wait_until(lambda: self.pg.waiting > queued, f"{name} is queued")

    async def __aexit__(self, *exc_info) -> None:
        self.queued = self.pg.waiting
        await self.core.db.bridge.run(_release, self.lock)


async def test_a_failed_condition_rolls_back_alone_in_its_group(core, db_url):
    bucket = await core.buckets.create(core.account_id, "group")
    await put(core, bucket, "taken", b"original")
    used_before, count_before = await _usage(core)
    async with trio.open_nursery() as nursery, _Group(core, db_url, nursery) as group:
        for i in range(3):
            await group.queue(f"new{i}", lambda i=i: put(core, bucket, f"new{i}", b"n" * i))
        await group.queue("taken", lambda: put(
            core, bucket, "taken", b"replaced", condition=WriteCondition(if_none_match=True)))
        for i in range(3, 6):
            await group.queue(f"new{i}", lambda i=i: put(core, bucket, f"new{i}", b"n" * i))
    assert group.queued == 7
    # The blocking unit's group, then the seven queued units in one group.
    assert core.db._pg.groups == group.groups_before + 1
    assert isinstance(group.results["taken"], errors.PreconditionFailed)
    for i in range(6):
        assert await read(core, bucket, f"new{i}") == b"n" * i
    assert await read(core, bucket, "taken") == b"original"
    assert await _usage(core) == (used_before + sum(range(6)), count_before + 6)


async def test_a_failed_unit_reruns_its_group_and_events_are_not_doubled(core, db_url):
    """A group runs without savepoints; when a unit fails the transaction
    rolls back and the group runs again, each unit in a savepoint.  The units
    that had run before the failure run twice: what they handed back (their
    events) must be that of the second run only."""
    bucket = await core.buckets.create(core.account_id, "rerun")
    await put(core, bucket, "taken", b"original")
    seen: list = []
    core.objects.events.subscribe(seen.append)
    fallbacks = core.db._pg.fallbacks
    async with trio.open_nursery() as nursery, _Group(core, db_url, nursery) as group:
        for i in range(2):
            await group.queue(f"new{i}", lambda i=i: put(core, bucket, f"new{i}", b"n" * i))
        await group.queue("taken", lambda: put(
            core, bucket, "taken", b"replaced", condition=WriteCondition(if_none_match=True)))
        await group.queue("new2", lambda: put(core, bucket, "new2", b"nn"))
    assert group.queued == 4
    assert core.db._pg.fallbacks == fallbacks + 1
    assert isinstance(group.results["taken"], errors.PreconditionFailed)
    keys = sorted(e.data["key"] for e in seen)
    assert keys == ["new0", "new1", "new2"]
    for i in range(3):
        assert group.results[f"new{i}"].etag  # committed, and its result is the rerun's
    assert await read(core, bucket, "new2") == b"nn"


async def _hold_chunk_then_want_account(url: str, chunk_id: str, account_id: str,
                                        locked: trio.Event, token) -> None:
    """Lock the chunk's refcount row; once another transaction queues behind
    it, ask for the account row that transaction holds: a deadlock, in which
    PostgreSQL picks the other transaction (this one's timeout is long)."""
    import asyncpg

    holder = await asyncpg.connect(url)
    watcher = await asyncpg.connect(url)
    try:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SET LOCAL deadlock_timeout = '20s'")
        await holder.execute("UPDATE chunk_refs SET refcount = refcount WHERE chunk_id = $1",
                             chunk_id)
        token.run_sync_soon(locked.set)
        for _ in range(1000):  # up to ~10 s
            if await watcher.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted "
                                      "AND locktype <> 'advisory'"):
                break
            await watcher.execute("SELECT pg_sleep(0.01)")
        else:
            raise AssertionError("the group never waited for the chunk row")
        await holder.execute("UPDATE accounts SET used_bytes = used_bytes WHERE id = $1",
                             account_id)
        await tx.commit()
    finally:
        await holder.close()
        await watcher.close()


async def test_a_deadlocked_unit_is_retried_and_its_group_commits(core, db_url):
    bucket = await core.buckets.create(core.account_id, "deadlock")
    shared = b"s" * 10_000  # over the inline threshold: a chunk with a refcount row
    (chunk_id, _), = (await put(core, bucket, "base", shared)).chunks
    used_before, count_before = await _usage(core)
    locked = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(core.db.bridge.run, _hold_chunk_then_want_account, db_url,
                           chunk_id, core.account_id, locked,
                           trio.lowlevel.current_trio_token())
        await locked.wait()
        async with _Group(core, db_url, nursery) as group:
            # The first unit charges the account row (held until the group
            # commits); the second then waits for the chunk row.
            await group.queue("first", lambda: put(core, bucket, "first", b"1"))
            await group.queue("dup", lambda: put(core, bucket, "dup", shared))
            await group.queue("third", lambda: put(core, bucket, "third", b"333"))
    assert group.queued == 3
    for name in ("first", "dup", "third"):
        assert not isinstance(group.results[name], Exception), group.results[name]
    assert await read(core, bucket, "dup") == shared
    assert await read(core, bucket, "third") == b"333"
    # The deadlocked attempt was rolled back to its savepoint: counted once.
    assert await _usage(core) == (used_before + 10_004, count_before + 3)
    assert await core.db.read(_refcount, chunk_id) == 2


async def test_relayed_units_commit_on_the_primarys_writer(core, db_url, tmp_path):
    """A secondary's commits travel to the primary's writer on PostgreSQL too
    (storage/write_relay.py): its errors come back as themselves, a failed
    condition rolls back alone, and usage is counted once per commit."""
    from storage.write_relay import WriteRelayClient, WriteRelayServer

    bucket = await core.buckets.create(core.account_id, "relayed")
    await put(core, bucket, "taken", b"original")
    used_before, count_before = await _usage(core)
    ran: list[object] = []

    async def write_many(calls):
        ran.extend(fn for fn, _, _ in calls)
        return await core.db.write_many(calls)

    results: dict[str, object] = {}

    async def attempt(name: str, key: str, data: bytes, **kw) -> None:
        try:
            results[name] = await put(core, bucket, key, data, **kw)
        except Exception as exc:
            results[name] = exc

    client = WriteRelayClient()
    async with trio.open_nursery() as nursery:
        socket_path = str(tmp_path / "write.sock")
        await nursery.start(WriteRelayServer(write_many).serve, socket_path)
        await nursery.start(client.run, socket_path)
        core.db.relay_writes(client)
        async with trio.open_nursery() as puts:
            for i in range(6):
                puts.start_soon(attempt, f"new{i}", f"new{i}", b"n" * i)
            puts.start_soon(functools.partial(
                attempt, "taken", "taken", b"replaced",
                condition=WriteCondition(if_none_match=True)))
        nursery.cancel_scope.cancel()
    assert len(ran) == 7
    assert isinstance(results["taken"], errors.PreconditionFailed)
    for i in range(6):
        assert await read(core, bucket, f"new{i}") == b"n" * i
    assert await read(core, bucket, "taken") == b"original"
    assert await _usage(core) == (used_before + sum(range(6)), count_before + 6)


async def test_a_group_of_distinct_keys_runs_side_by_side(core, db_url):
    """Units of distinct keys run in lockstep (storage/pg_steps.py), each
    round one statement for all of them; every unit still gets its own
    results (row ids, the version it replaced, its events) and usage and
    chunk references are counted once each."""
    bucket = await core.buckets.create(core.account_id, "lockstep")
    shared = b"s" * 10_000  # over the inline threshold: a chunk with a refcount row
    (chunk_id, _), = (await put(core, bucket, "base", shared)).chunks
    for i in range(2):
        await put(core, bucket, f"old{i}", b"o" * (i + 1))
    used_before, count_before = await _usage(core)
    seen: list = []
    core.objects.events.subscribe(seen.append)
    pg = core.db._pg
    side_by_side, fallbacks = pg.side_by_side, pg.fallbacks
    async with trio.open_nursery() as nursery, _Group(core, db_url, nursery) as group:
        for i in range(3):
            await group.queue(f"new{i}", lambda i=i: put(core, bucket, f"new{i}", b"n" * i))
        for i in range(2):
            await group.queue(f"old{i}", lambda i=i: put(core, bucket, f"old{i}", b"O" * 5))
        await group.queue("dup", lambda: put(core, bucket, "dup", shared))
    assert group.queued == 6
    assert (pg.side_by_side, pg.fallbacks) == (side_by_side + 1, fallbacks)
    infos = [group.results[n] for n in ("new0", "new1", "new2", "old0", "old1", "dup")]
    assert len({info.row_id for info in infos}) == 6
    assert [info.version_number for info in infos] == [1, 1, 1, 2, 2, 1]
    kinds = {e.data["key"]: str(e.type) for e in seen}
    assert kinds == {"new0": "object.created", "new1": "object.created",
                     "new2": "object.created", "old0": "object.updated",
                     "old1": "object.updated", "dup": "object.created"}
    for i in range(3):
        assert await read(core, bucket, f"new{i}") == b"n" * i
    assert await read(core, bucket, "old1") == b"O" * 5
    assert await read(core, bucket, "dup") == shared
    history = await core.db.read(_history_of, bucket.id, "old1")
    assert [r["size"] for r in history] == [2]
    assert await _usage(core) == (used_before + 3 + 10 + 10_000, count_before + 6)
    assert await core.db.read(_refcount, chunk_id) == 2


async def _history_of(fetch, dialect, bucket_id, key):
    return await fetch("SELECT size FROM object_versions WHERE bucket_id = $1 "
                       "AND key = $2 AND history_at IS NOT NULL", [bucket_id, key])


async def test_units_of_one_key_run_one_after_the_other(core, db_url):
    """Two commits of one key in a group are not run side by side: the
    second sees the first's version, as it would in groups of their own."""
    bucket = await core.buckets.create(core.account_id, "samekey")
    pg = core.db._pg
    side_by_side, fallbacks = pg.side_by_side, pg.fallbacks
    async with trio.open_nursery() as nursery, _Group(core, db_url, nursery) as group:
        await group.queue("first", lambda: put(core, bucket, "k", b"1"))
        await group.queue("other", lambda: put(core, bucket, "other", b"x"))
        await group.queue("second", lambda: put(core, bucket, "k", b"22"))
    assert group.queued == 3
    assert (pg.side_by_side, pg.fallbacks) == (side_by_side, fallbacks)
    assert group.results["first"].version_number == 1
    assert group.results["second"].version_number == 2
    assert await read(core, bucket, "k") == b"22"


def _unmarked_unit(name: str):
    """A unit that cannot be made anew (not relayable), as background workers write."""
    yield (sql.EXECUTE, "INSERT INTO outbox_cursors (name, event_id, updated_at) "
           "VALUES (?, 0, now())", (name,))
    return name


async def test_a_unit_that_cannot_be_remade_commits_in_a_group_of_its_own(core, db_url):
    """Queued among PutObjects, a unit without a remaker would make them all
    take savepoints: it goes in the next group, and they run side by side."""
    bucket = await core.buckets.create(core.account_id, "mixed")
    pg = core.db._pg
    side_by_side = pg.side_by_side
    async with trio.open_nursery() as nursery, _Group(core, db_url, nursery) as group:
        await group.queue("a", lambda: put(core, bucket, "a", b"a"))
        await group.queue("cursor", lambda: core.db.write(_unmarked_unit, "test-cursor"))
        await group.queue("b", lambda: put(core, bucket, "b", b"bb"))
    assert group.queued == 3
    assert pg.groups == group.groups_before + 2
    assert pg.side_by_side == side_by_side + 1
    assert group.results["cursor"] == "test-cursor"
    assert await read(core, bucket, "b") == b"bb"
