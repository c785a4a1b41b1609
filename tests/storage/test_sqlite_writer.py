"""storage/sqlite_writer.py against a real WAL-mode SQLite file."""

from __future__ import annotations

import os
import sqlite3

import pytest
import trio

from storage import sql, sqlite_writer
from storage.sqlite_writer import SqliteWriter, WriterClosed

pytestmark = pytest.mark.trio


def _schema(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER, "
                 "parent INTEGER REFERENCES parent (id))")
    conn.execute("INSERT INTO parent VALUES (1)")
    return conn


def _insert(key: str, value: int, parent: int = 1) -> sql.UnitOfWork[int]:
    changed = yield (sql.EXECUTE, "INSERT INTO t (k, v, parent) VALUES (?, ?, ?)",
                     (key, value, parent))
    rows = yield (sql.FETCH, "SELECT count(*) AS n FROM t", ())
    return changed * 1000 + rows[0]["n"]


def _insert_then_fail(key: str) -> sql.UnitOfWork[None]:
    yield (sql.EXECUTE, "INSERT INTO t (k, v, parent) VALUES (?, 0, 1)", (key,))
    raise ValueError("refused after writing")


def _rows(path: str) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT k, v FROM t").fetchall())


@pytest.fixture
def db_path(tmp_path):
    path = str(tmp_path / "meta.sqlite3")
    _schema(path).close()
    return path


@pytest.fixture
def writer(db_path):
    w = SqliteWriter(db_path, busy_timeout_ms=10000)
    w.open()
    yield w
    w.close()


async def test_units_queued_together_share_a_commit_and_fail_alone(writer, db_path):
    results: dict[str, object] = {}

    async def run(name, work):
        try:
            results[name] = await writer.run(work)
        except Exception as exc:
            results[name] = exc

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, "a", _insert("a", 1))
        nursery.start_soon(run, "bad", _insert_then_fail("bad"))
        nursery.start_soon(run, "b", _insert("b", 2))
        nursery.start_soon(run, "orphan", _insert("orphan", 3, parent=99))

    # Each unit saw the writes of the units before it in the group.
    assert sorted([results["a"], results["b"]]) == [1001, 1002]
    assert isinstance(results["bad"], ValueError)
    assert isinstance(results["orphan"], sqlite3.IntegrityError)  # foreign keys are on
    assert _rows(db_path) == {"a": 1, "b": 2}


async def test_a_held_write_lock_sends_the_unit_to_the_thread_without_blocking(writer, db_path):
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer (the ORM, another node) holds the lock
    other.execute("INSERT INTO t (k, v, parent) VALUES ('other', 0, 1)")
    done = trio.Event()
    result: list[int] = []

    async def put() -> None:
        result.append(await writer.run(_insert("mine", 7)))
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(put)
        # The event loop keeps running while the unit waits for the lock.
        for _ in range(50):
            await trio.sleep(0)
        assert not done.is_set()
        other.execute("COMMIT")
        with trio.fail_after(10):
            await done.wait()
    other.close()
    assert result == [1002]
    assert _rows(db_path) == {"other": 0, "mine": 7}


async def test_inline_commits_are_checkpointed_by_the_thread(db_path, monkeypatch):
    monkeypatch.setattr(sqlite_writer, "CHECKPOINT_EVERY", 5)
    writer = SqliteWriter(db_path)
    writer.open()
    try:
        size_before = os.path.getsize(db_path)
        for i in range(5):
            await writer.run(_insert(f"k{i}" + "x" * 4000, i))
        # The main file grows only when a checkpoint copies pages into it.
        with trio.fail_after(10):
            while os.path.getsize(db_path) <= size_before:
                await trio.sleep(0.01)
    finally:
        writer.close()
    assert len(_rows(db_path)) == 5


async def test_the_wal_is_checkpointed_once_writes_pause(db_path, tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite_writer, "IDLE_CHECKPOINT_SECONDS", 0.05)
    writer = SqliteWriter(db_path)
    writer.open()
    copy = str(tmp_path / "main-file-only.sqlite3")

    def main_file_rows() -> dict[str, int]:
        # The database file alone, without its WAL: what a checkpoint wrote.
        with open(db_path, "rb") as src, open(copy, "wb") as dst:
            dst.write(src.read())
        return _rows(copy)

    try:
        for i in range(3):
            await writer.run(_insert(f"k{i}", i))
        with trio.fail_after(10):
            while main_file_rows() != {"k0": 0, "k1": 1, "k2": 2}:
                await trio.sleep(0.02)
    finally:
        writer.close()


async def test_a_closed_writer_refuses_work(db_path):
    writer = SqliteWriter(db_path)
    with pytest.raises(WriterClosed):
        await writer.run(_insert("never", 0))
    writer.open()
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(WriterClosed):
        await writer.run(_insert("never", 0))
    assert _rows(db_path) == {}
