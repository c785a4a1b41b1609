"""A node shared by the tests of a module (each test uses its own accounts)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.harness import NodeProcess, started_node


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A real node process on free ports (SQLite metadata)."""
    extra = ('[accounts]\nrest_max_upload = "8MiB"\nlogin_attempts_per_minute = 200\n'
             'rest_lists_per_second = 5\n')
    with started_node(tmp_path_factory.mktemp("restnode"), extra) as n:
        yield n


@dataclass
class User:
    """A signed-up user: a session-cookie client and the first key pair."""

    client: httpx.Client
    email: str
    account_id: str
    access_key: str
    secret_key: str
    bucket: str

    @property
    def api_headers(self) -> dict[str, str]:
        return {"X-API-Key": f"{self.access_key}:{self.secret_key}"}


def signup(node: NodeProcess, password: str = "correct horse") -> User:
    """Sign a new user up through the API."""
    email = f"u{secrets.token_hex(6)}@example.com"
    client = httpx.Client(base_url=node.web_url, timeout=60)
    r = client.post("/api/auth/signup", json={"email": email, "password": password})
    assert r.status_code == 201, r.text
    body = r.json()
    return User(client, email, body["user"]["id"], body["accessKey"], body["secretKey"],
                body["bucket"])


@pytest.fixture
def user(node: NodeProcess) -> Iterator[User]:
    """A fresh account with a session."""
    u = signup(node)
    yield u
    u.client.close()
