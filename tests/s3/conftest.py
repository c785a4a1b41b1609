"""An S3 endpoint for real clients: the S3 app on the node's own HTTP server.

A module-scoped server runs in a background thread (its own trio loop, the
asyncio bridge, a SQLite metadata DB and a local chunk store in a temp dir);
every test gets a fresh account, so bucket limits, quotas and per-key rate
limits never leak between tests.  The fixture object has the same shape as
the node fixture of tests/conftest.py (``s3_url``, ``access_key``,
``secret_key``, ``region``, ``data_dir``, ``settings``, ``create_account``).
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
import pytest
import trio
from botocore.config import Config as BotoConfig

T = TypeVar("T")


class Server:
    """The S3 app on a free loopback port, in a thread of its own."""

    def __init__(self, data_dir: Path, *, rate_limits: dict[str, float] | None = None,
                 quota: int | None = None, max_header_bytes: int = 16384,
                 body_timeout: float | None = None, metadata_url: str | None = None,
                 region: str = "eu-central-1") -> None:
        self.data_dir = data_dir
        self.region = region  # the cluster's (cluster.region)
        # None: a SQLite file in data_dir; else e.g. a PostgreSQL test database.
        self.metadata_url = metadata_url
        self.body_timeout = body_timeout
        self.rate_limits = rate_limits
        self.quota = quota
        self.max_header_bytes = max_header_bytes
        self.url = ""
        self.services: Any = None
        self.settings: Any = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="s3-test-server", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("S3 test server did not start within 60 s")
        if self._error is not None:
            raise RuntimeError("S3 test server failed to start") from self._error

    def stop(self) -> None:
        if self._token is not None and self._stop is not None:
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(30)

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``fn(*args)`` on the server's trio loop and return its result."""
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        from cluster.services import build_services
        from config.settings import Settings, replace
        from protocols.http_server import ServerConfig, serve_http
        from protocols.s3.app import create_s3_app
        from protocols.s3.error_page import s3_error_page
        from storage.bridge import AsyncioBridge
        from storage.db import Database

        settings = replace(
            Settings(),
            node={"data_dir": self.data_dir / "node"},
            metadata={"url": self.metadata_url or f"sqlite://{self.data_dir / 'meta.sqlite3'}"},
            cluster={"secret": "s3-test-cluster-secret-0123456789", "region": self.region},
            listen={"max_header_bytes": self.max_header_bytes},
            accounts={"default_quota": self.quota or 10 * 1024**3},
        )
        self.settings = settings
        bridge = AsyncioBridge()
        bridge.start()
        db = Database(settings.metadata.url, bridge)
        try:
            await db.open()
            self.services = build_services(settings, bridge, db)
            app = create_s3_app(self.services, rate_limits=self.rate_limits)
            # As cluster.node serves it: heads somewhat past the S3 limit
            # reach the app, which answers them with S3's XML error.
            config = ServerConfig(host="127.0.0.1", port=0,
                                  max_header_bytes=self.max_header_bytes * 4)
            if self.body_timeout is not None:
                config = dataclasses.replace(config, body_timeout=self.body_timeout)
            self._token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            async with trio.open_nursery() as nursery:
                binds = await nursery.start(
                    lambda task_status: serve_http(
                        app, config, self._stop, error_page=s3_error_page,
                        task_status=task_status,
                    )
                )
                self.url = binds[0]
                self._ready.set()
        finally:
            await db.close()
            bridge.stop()

    def new_credentials(self, email: str | None = None) -> tuple[str, str]:
        """A new account with one access key; returns (access key, secret)."""
        email = email or f"user-{secrets.token_hex(6)}@example.com"

        async def make() -> tuple[str, str]:
            account = await self.services.accounts.create_account(email)
            creds = await self.services.accounts.create_access_key(account.id)
            return creds.access_key, creds.secret_key

        return self.call(make)


@dataclass
class S3Node:
    """What an S3 test needs: an endpoint, a tenant's keys and client factories."""

    server: Server
    access_key: str
    secret_key: str
    region: str = "eu-central-1"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def s3_url(self) -> str:
        return self.server.url

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    @property
    def settings(self) -> Any:
        return self.server.settings

    def create_account(self, email: str) -> tuple[str, str]:
        """Another tenant's key pair (tenant-isolation tests)."""
        return self.server.new_credentials(email)

    def client(self, access_key: str | None = None, secret_key: str | None = None,
               **config: Any) -> Any:
        """A boto3 S3 client for this node (retries off unless asked: errors
        must surface, not be retried away)."""
        config.setdefault("retries", {"total_max_attempts": 1, "mode": "standard"})
        config.setdefault("s3", {"addressing_style": "path"})
        return boto3.client(
            "s3", endpoint_url=self.s3_url, region_name=self.region,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=BotoConfig(**config),
        )


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One S3 server per test module (default, documented rate limits)."""
    server = Server(tmp_path_factory.mktemp("s3node"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pg_s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One S3 server per test module whose metadata is a fresh PostgreSQL database
    (PostgreSQL enforces what SQLite lets through: column widths, no NUL in text).
    A module runs its tests on it by defining ``s3_server`` to return it."""
    from tests.conftest import PG_BASE, _psql

    name = f"cs_s3_{secrets.token_hex(6)}"
    _psql(f'CREATE DATABASE "{name}"')
    url = urlsplit(PG_BASE)._replace(path=f"/{name}").geturl()
    server = Server(tmp_path_factory.mktemp("s3pg"), metadata_url=url)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def node(s3_server: Server) -> S3Node:
    """A fresh tenant on the module's server."""
    access_key, secret_key = s3_server.new_credentials()
    return S3Node(s3_server, access_key, secret_key)


@pytest.fixture
def s3(node: S3Node) -> Any:
    """A boto3 client with default (>= 1.36) checksum behaviour."""
    return node.client()


@pytest.fixture
def bucket(s3: Any) -> str:
    """A new empty bucket of the test's tenant."""
    name = f"b-{secrets.token_hex(6)}"
    s3.create_bucket(Bucket=name)
    return name
