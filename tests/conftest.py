"""Shared fixtures: temp metadata databases on SQLite and PostgreSQL, and a
storage core wired to a local chunk store.

PostgreSQL tests get a fresh database of their own (created through psql on
the server named by CLOUDSTORAGE_TEST_PG, default the local trust-auth
server), so tests stay isolated and parallel-safe.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.harness import NodeProcess, started_node

PG_BASE = os.environ.get("CLOUDSTORAGE_TEST_PG", "postgres://postgres@127.0.0.1:5432/test")


def _psql(sql: str) -> None:
    parts = urlsplit(PG_BASE)
    env = dict(os.environ, PGPASSWORD=parts.password or "")
    psql = shutil.which("psql")
    if psql is None:
        pytest.fail("psql is not installed: the PostgreSQL tests need the client (make test-deps)")
    subprocess.run(
        [psql, "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432),
         "-U", parts.username or "postgres", "-d", parts.path.lstrip("/") or "test",
         "-v", "ON_ERROR_STOP=1", "-qc", sql],
        check=True, env=env, capture_output=True, timeout=60,
    )


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards."""
    name = f"cs_test_{secrets.token_hex(6)}"
    try:
        _psql(f'CREATE DATABASE "{name}"')
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"cannot create a PostgreSQL test database: {exc.stderr.decode().strip()}")
    parts = urlsplit(PG_BASE)
    yield parts._replace(path=f"/{name}").geturl()
    _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh metadata database URL, once per backend."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'meta.sqlite3'}"
    return request.getfixturevalue("pg_url")


@dataclass
class Core:
    """A storage core wired for tests."""

    db: object
    accounts: object
    buckets: object
    objects: object
    chunks: object
    account_id: str


@pytest.fixture
async def core(db_url: str, tmp_path: Path) -> AsyncIterator[Core]:
    """Bridge + migrated database + services over a local chunk store."""
    from storage.accounts import AccountService
    from storage.bridge import AsyncioBridge
    from storage.buckets import BucketService
    from storage.chunkstore import LocalChunkStore
    from storage.crypto import SecretBox
    from storage.db import Database
    from storage.objects import ObjectService

    bridge = AsyncioBridge()
    bridge.start()
    db = Database(db_url, bridge)
    try:
        await db.open()
        accounts = AccountService(db, SecretBox(b"test-cluster-secret-0123456789"),
                                  default_quota=10 * 1024**3)
        account = await accounts.create_account("owner@example.com", "correct horse")
        chunks = LocalChunkStore(tmp_path / "chunks")
        yield Core(
            db=db, accounts=accounts, buckets=BucketService(db), chunks=chunks,
            objects=ObjectService(db, chunks), account_id=account.id,
        )
    finally:
        await db.close()
        bridge.stop()


@pytest.fixture
def running_node(tmp_path: Path) -> Iterator[NodeProcess]:
    """A real ``cloudstorage serve`` process on free ports, SQLite metadata."""
    with started_node(tmp_path) as node:
        yield node


# How much of each node's log a failure report shows.
LOG_TAIL_LINES = 80


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """A failed test's report ends with the log tail of every node it started
    (a timeout's cause is in the node's log, not in the client's traceback)."""
    from tests import harness

    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for node in harness.STARTED:
            tail = node.read_log().splitlines()[-LOG_TAIL_LINES:]
            report.sections.append((f"node {node.node_id} log ({node.log})", "\n".join(tail)))
    if report.when == "teardown":  # a module's node stays listed while it runs
        harness.STARTED[:] = [n for n in harness.STARTED
                              if n.process is not None and n.process.poll() is None]
