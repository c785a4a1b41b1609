"""storage/sqlite_reader.py against a real WAL-mode SQLite file."""

from __future__ import annotations

import sqlite3

import pytest

from storage.sqlite_reader import Busy, SqliteReader

pytestmark = pytest.mark.trio


def _writer(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER)")
    return conn


async def test_reads_see_each_commit_and_never_write(tmp_path):
    path = str(tmp_path / "meta.sqlite3")
    writer = _writer(path)
    reader = SqliteReader(path)
    reader.open()
    try:
        writer.execute("INSERT INTO t VALUES ('a', 1)")
        assert await reader.fetch("SELECT k, v FROM t WHERE k = ?", ["a"]) == [{"k": "a", "v": 1}]
        writer.execute("BEGIN")
        writer.execute("UPDATE t SET v = 2 WHERE k = 'a'")
        # A write in progress neither blocks the reader nor shows through.
        assert await reader.fetch("SELECT v FROM t", []) == [{"v": 1}]
        writer.execute("COMMIT")
        assert await reader.fetch("SELECT v FROM t", []) == [{"v": 2}]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await reader.fetch("DELETE FROM t", [])
    finally:
        reader.close()
        writer.close()


async def test_a_closed_reader_is_busy_so_callers_take_the_bridge(tmp_path):
    path = str(tmp_path / "meta.sqlite3")
    _writer(path).close()
    reader = SqliteReader(path)
    reader.open()
    reader.close()
    with pytest.raises(Busy):
        await reader.fetch("SELECT v FROM t", [])
