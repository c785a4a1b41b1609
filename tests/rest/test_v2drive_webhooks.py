"""v2-drive webhooks (seed 004) against a live node delivering to a local
receiver: the document's payload, signed, for changes made through v2-drive
and S3."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.harness import NodeProcess, started_node
from tests.rest.test_v2drive_support import (
    auth,
    drive_user,
    error_of,
    new_key,
    s3_client,
    upload,
)
from tests.rest.webhook_support import receiver

SECRET = "whsec_your_signing_secret"
NODE_EXTRA = """
[accounts]
login_attempts_per_minute = 200
[outbound]
allowed_networks = ["127.0.0.0/8"]
[webhooks]
poll_seconds = 0.2
retry_base_seconds = 0.1
timeout_seconds = 2
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A node that may deliver to loopback receivers."""
    with started_node(tmp_path_factory.mktemp("v2drivehooks"), NODE_EXTRA) as n:
        yield n


def test_document_payloads_signed(node: NodeProcess) -> None:
    user, key = drive_user(node)
    base = f"{node.web_url}/v2"
    with receiver() as rec:
        r = httpx.post(f"{base}/webhooks", headers=auth(key), json={
            "url": rec.url, "events": ["file.created", "file.deleted", "file.shared",
                                       "folder.created"], "secret": SECRET})
        assert r.status_code == 201, r.text
        hook = r.json()
        assert hook["id"].startswith("whd_") and "secret" not in hook
        assert hook["events"] == ["file.created", "file.deleted", "file.shared",
                                  "folder.created"]
        f = upload(node, key, "Q3_Financial_Report.pdf", b"%PDF" * 100)
        folder = httpx.post(f"{base}/folders", json={"name": "Board"}, headers=auth(key)).json()
        s3_client(node, user).put_object(Bucket=user.bucket, Key="from-s3.txt", Body=b"s3")
        assert httpx.delete(f"{base}/files/{f['id']}", headers=auth(key)).status_code == 204

        got = rec.wait_for(lambda rs: len(rs) >= 4)
        bodies = [json.loads(g.body) for g in got]
        for g, body in zip(got, bodies, strict=True):
            assert set(body) == {"id", "type", "timestamp", "data", "signature"}
            unsigned = {k: v for k, v in body.items() if k != "signature"}
            raw = json.dumps(unsigned, separators=(",", ":"), ensure_ascii=False).encode()
            assert body["signature"] == "sha256=" + hmac.new(SECRET.encode(), raw,
                                                             hashlib.sha256).hexdigest()
            assert g.headers["X-CloudStorage-Signature"] == hmac.new(
                SECRET.encode(), g.body, hashlib.sha256).hexdigest()
            assert body["id"].startswith("evt_") and body["timestamp"].endswith("Z")
        by_type = {(b["type"], b["data"]["name"]): b for b in bodies}
        created = by_type[("file.created", "Q3_Financial_Report.pdf")]
        assert created["data"] == {"file_id": f["id"], "name": "Q3_Financial_Report.pdf",
                                   "size": 400, "owner_id": user.account_id}
        assert by_type[("folder.created", "Board")]["data"]["folder_id"] == folder["id"]
        assert ("file.created", "from-s3.txt") in by_type  # made through S3
        assert by_type[("file.deleted", "Q3_Financial_Report.pdf")]["data"]["file_id"] == f["id"]

        listed = httpx.get(f"{base}/webhooks", headers=auth(key)).json()
        assert [h["id"] for h in listed["data"]] == [hook["id"]] and listed["total_count"] == 1
        assert httpx.delete(f"{base}/webhooks/{hook['id']}", headers=auth(key)).status_code == 204
        assert httpx.get(f"{base}/webhooks", headers=auth(key)).json()["total_count"] == 0
        assert error_of(httpx.delete(f"{base}/webhooks/{hook['id']}", headers=auth(key))) == (
            404, "resource_not_found")

    # Errors: events the core cannot send, unknown ones, a bad URL, the scope.
    for events in (["team.member_added"], ["file.exploded"], []):
        assert error_of(httpx.post(f"{base}/webhooks", headers=auth(key), json={
            "url": "https://example.com/hook", "events": events})) == (400, "invalid_request")
    made = httpx.post(f"{base}/webhooks", headers=auth(key), json={
        "url": "http://127.0.0.1:9/hook", "events": ["file.created"]}).json()
    assert made["secret"].startswith("whsec_")  # chosen by the server: shown once
    reader = new_key(user, scopes=["files.read", "webhooks.read"])["key"]
    assert error_of(httpx.post(f"{base}/webhooks", headers=auth(reader), json={
        "url": "https://example.com/hook", "events": ["file.created"]})) == (
        403, "insufficient_scope")
    user.client.close()
