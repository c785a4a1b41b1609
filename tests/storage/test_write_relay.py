"""storage/write_relay.py: units of work sent over a real Unix socket to a
real SQLite group-commit writer."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from storage import errors, sql
from storage.sqlite_writer import SqliteWriter
from storage.write_relay import LinkLost, WriteRelayClient, WriteRelayServer, relayable
from tests.storage.test_sqlite_writer import _rows, _schema

pytestmark = pytest.mark.trio


@relayable
def insert_steps(key: str, value: int, seen: list[str]) -> sql.UnitOfWork[int]:
    yield (sql.EXECUTE, "INSERT INTO t (k, v) VALUES (?, ?)", (key, value))
    rows = yield (sql.FETCH, "SELECT k FROM t ORDER BY k", ())
    seen.extend(r["k"] for r in rows)
    return os.getpid()


@relayable
def refused_steps(key: str) -> sql.UnitOfWork[None]:
    yield (sql.EXECUTE, "INSERT INTO t (k, v) VALUES (?, 0)", (key,))
    raise errors.PreconditionFailed(condition="If-Match")


def unmarked_steps(key: str) -> sql.UnitOfWork[None]:
    yield (sql.EXECUTE, "INSERT INTO t (k, v) VALUES (?, 0)", (key,))


@pytest.fixture
def db_path(tmp_path):
    path = str(tmp_path / "meta.sqlite3")
    _schema(path).close()  # table t (k, v, parent)
    return path


@pytest.fixture
async def relay(db_path, tmp_path) -> AsyncIterator[tuple[WriteRelayClient, list[Any]]]:
    """A client connected to a server whose writes run on a SqliteWriter;
    yields the client and the list of units the server ran."""
    writer = SqliteWriter(db_path)
    writer.open()
    ran: list[Any] = []

    async def write_many(calls: list[Any]) -> list[Any]:
        ran.extend(fn for fn, _, _ in calls)
        return await writer.run_many([fn(*args, **kwargs) for fn, args, kwargs in calls])

    socket_path = str(tmp_path / "write.sock")
    client = WriteRelayClient()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(WriteRelayServer(write_many).serve, socket_path)
            await nursery.start(client.run, socket_path)
            yield client, ran
            nursery.cancel_scope.cancel()
    finally:
        writer.close()


async def test_units_run_on_the_servers_writer_and_fill_list_arguments(relay, db_path):
    client, ran = relay
    seen: dict[str, list[str]] = {}
    results: dict[str, int] = {}

    async def put(key: str, value: int) -> None:
        seen[key] = []
        results[key] = await client.write(insert_steps, key, value, seen[key])

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(put, f"k{i:02}", i)
    assert _rows(db_path) == {f"k{i:02}": i for i in range(20)}
    assert ran == [insert_steps] * 20
    # The out-parameter came back: each unit saw its own row and those committed before.
    for key, keys in seen.items():
        assert key in keys and keys == sorted(keys)
    assert set(results.values()) == {os.getpid()}


async def test_a_units_error_comes_back_as_itself_and_rolls_back_alone(relay, db_path):
    client, _ = relay
    outcomes: dict[str, Any] = {}

    async def run(name: str, fn: Any, *args: Any) -> None:
        try:
            outcomes[name] = await client.write(fn, *args)
        except Exception as exc:
            outcomes[name] = exc

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, "good", insert_steps, "good", 1, [])
        nursery.start_soon(run, "bad", refused_steps, "bad")
    error = outcomes["bad"]
    assert isinstance(error, errors.PreconditionFailed)
    assert error.details == {"condition": "If-Match"}
    assert _rows(db_path) == {"good": 1}


async def test_only_marked_units_are_run(relay, db_path):
    client, ran = relay
    with pytest.raises(PermissionError):
        await client.write(unmarked_steps, "sneaky")
    assert ran == [] and _rows(db_path) == {}


async def test_waiting_writes_fail_when_the_link_breaks(tmp_path):
    started, release = trio.Event(), trio.Event()

    async def write_many(calls: list[Any]) -> list[Any]:
        started.set()
        await release.wait()
        return []

    socket_path = str(tmp_path / "write.sock")
    client = WriteRelayClient()
    outcome: list[BaseException] = []
    failed = trio.Event()

    async def call() -> None:
        try:
            await client.write(insert_steps, "k", 1, [])
        except LinkLost as exc:
            outcome.append(exc)
            failed.set()

    async with trio.open_nursery() as outer:
        server_scope = trio.CancelScope()

        async def serve(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            with server_scope:
                await WriteRelayServer(write_many).serve(socket_path, task_status=task_status)

        await outer.start(serve)
        await outer.start(client.run, socket_path)
        outer.start_soon(call)
        await started.wait()
        server_scope.cancel()  # the primary goes away mid-write
        with trio.fail_after(10):
            await failed.wait()
        assert not client.connected
        outer.cancel_scope.cancel()
    assert isinstance(outcome[0], errors.ServiceUnavailable)
