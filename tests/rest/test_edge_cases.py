"""The web port's edges against real nodes: NUL in client text, stalled bodies,
request smuggling, lost chunks."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from tests.harness import prepare_node
from tests.rest.conftest import signup


def _fid(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _assert_refused(r: httpx.Response, name: str) -> None:
    assert r.status_code == 400, (r.status_code, r.text)
    body = r.json()
    assert body["error"] == "InvalidArgument" and body["status"] == 400, body
    assert f"'{name}'" in body["message"], body


@pytest.mark.postgres
def test_nul_in_client_text_is_a_400_naming_the_parameter(pg_url: str, tmp_path: Path) -> None:
    # PostgreSQL refuses NUL in text columns, failing the statement: each of
    # these reached it and answered 500 before.
    node = prepare_node(tmp_path / "node1", pg_url)
    node.start()
    try:
        user = signup(node)
        api, c = user.api_headers, user.client
        with httpx.Client(base_url=node.web_url, timeout=30) as anon:
            _assert_refused(anon.post("/api/auth/signup",
                                      json={"email": "a\x00@example.com",
                                            "password": "correct horse"}), "email")
            _assert_refused(anon.post("/api/auth/login",
                                      json={"email": "a\x00@example.com",
                                            "password": "correct horse"}), "email")
        files = "/api/v1/files"
        _assert_refused(c.get(f"{files}/{_fid(user.bucket + '/a' + chr(0))}", headers=api), "id")
        _assert_refused(c.get(f"{files}/{_fid('b' + chr(0) + '/key')}", headers=api), "id")
        _assert_refused(c.delete(f"{files}/{_fid('b' + chr(0) + '/key')}", headers=api), "id")
        _assert_refused(c.get(f"{files}?prefix=a%00", headers=api), "prefix")
        _assert_refused(c.get(f"{files}?bucket=b%00", headers=api), "bucket")
        _assert_refused(c.get(f"{files}?cursor={_fid('a' + chr(0))}", headers=api), "cursor")
        _assert_refused(c.post(f"{files}?key=k&bucket=b%00", headers=api, content=b"x"),
                        "bucket")
        _assert_refused(c.post(files, headers=api, data={"bucket": "b\x00"},
                               files={"file": ("a.txt", b"x")}), "bucket")
        _assert_refused(c.get("/api/explorer?bucket=b%00"), "bucket")
        _assert_refused(c.get("/api/explorer?prefix=p%00"), "prefix")
        _assert_refused(c.get(f"/api/explorer?cursor={_fid('a' + chr(0))}"), "cursor")
        _assert_refused(c.delete("/api/keys?id=AK%00"), "id")
        _assert_refused(c.delete("/api/sftp/keys?id=k%00"), "id")
        _assert_refused(c.post("/api/keys", json={"name": "n\x00"}), "name")
        # The node is still fine, and nothing was stored.
        listed = c.get(files, headers=api)
        assert listed.status_code == 200 and listed.json()["files"] == []
        user.client.close()
    finally:
        node.stop()
