"""Fixtures for the admin API and console tests: real node processes, the
admin token ``cloudstorage init`` leaves next to the cluster secret, and a
validator that checks answers against the OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.harness import NodeProcess, prepare_node

SPEC = json.loads(
    (Path(__file__).resolve().parents[2] / "protocols/admin/openapi.json").read_text())


def validate(response: httpx.Response, template: str, method: str = "get") -> Any:
    """Check ``response`` against the schema the spec documents for it; return its JSON."""
    documented = SPEC["paths"][template][method]["responses"]
    entry = documented.get(str(response.status_code))
    assert entry is not None, (
        f"{method.upper()} {template}: undocumented status {response.status_code}: "
        f"{response.text}")
    if "$ref" in entry:
        entry = SPEC["components"]["responses"][entry["$ref"].rsplit("/", 1)[1]]
    schema = entry["content"]["application/json"]["schema"]
    body = response.json()
    jsonschema.validate(body, {**schema, "components": SPEC["components"]})
    return body


@dataclass
class Admin:
    """A running node plus an httpx client authenticated for its admin API."""

    node: NodeProcess
    token: str
    client: httpx.Client

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(f"/admin/v1{path}", **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.post(f"/admin/v1{path}", **kw)

    def patch(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.patch(f"/admin/v1{path}", **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.delete(f"/admin/v1{path}", **kw)


def console_token(node: NodeProcess) -> str:
    """The token ``cloudstorage init`` wrote for the local console."""
    return node.settings.console_token_file().read_text().strip()


@pytest.fixture
def admin(running_node: NodeProcess) -> Iterator[Admin]:
    """The running node's admin API with a write token."""
    token = console_token(running_node)
    with httpx.Client(base_url=running_node.web_url, timeout=10,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        yield Admin(running_node, token, client)


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    """Two node processes sharing one SQLite database and cluster secret."""
    db = f"sqlite://{tmp_path / 'meta.sqlite3'}"
    first = prepare_node(tmp_path / "node1", db, "node1", zone="dc1")
    first.start()
    second = prepare_node(tmp_path / "node2", db, "node2", zone="dc2")
    try:
        second.start()
        yield first, second
    finally:
        second.stop()
        first.stop()
