"""v2-drive webhooks (seed 004) against a live node delivering to a local
receiver: the document's payload, signed, for changes made through v2-drive
and S3, and for team membership changed through either teams API."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.harness import NodeProcess, started_node
from tests.rest.conftest import signup
from tests.rest.test_teams import Mailbox, mailbox  # noqa: F401  (fixture)
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
def node(tmp_path_factory: pytest.TempPathFactory,
         mailbox: tuple[Mailbox, int]) -> Iterator[NodeProcess]:  # noqa: F811
    """A node that may deliver to loopback receivers and mails team invites to the sink."""
    smtp = f'[smtp]\nhost = "127.0.0.1"\nport = {mailbox[1]}\nstarttls = false\n'
    with started_node(tmp_path_factory.mktemp("v2drivehooks"), NODE_EXTRA + smtp) as n:
        yield n


def _verified(body: bytes) -> dict:
    """The JSON of a delivery whose ``signature`` member signs the rest."""
    doc = json.loads(body)
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    raw = json.dumps(unsigned, separators=(",", ":"), ensure_ascii=False).encode()
    assert doc["signature"] == "sha256=" + hmac.new(SECRET.encode(), raw,
                                                    hashlib.sha256).hexdigest()
    return doc


def test_team_membership_webhooks(node: NodeProcess,
                                  mailbox: tuple[Mailbox, int]) -> None:  # noqa: F811
    """Members added and removed through the v2-drive and the seed-000 teams
    APIs reach a v2-drive webhook as the document's team.member_* events."""
    owner, key = drive_user(node)
    member = signup(node)
    base = f"{node.web_url}/v2"
    # Seed 000's webhooks do not list team events: still refused there.
    r = owner.client.post("/api/webhooks", json={"url": "https://example.com/h",
                                                 "events": ["team.member_added"]})
    assert r.status_code == 400, r.text
    with receiver() as rec:
        r = httpx.post(f"{base}/webhooks", headers=auth(key), json={
            "url": rec.url, "events": ["team.member_added", "team.member_removed"],
            "secret": SECRET})
        assert r.status_code == 201, r.text
        assert r.json()["events"] == ["team.member_added", "team.member_removed"]
        team = httpx.post(f"{base}/teams", headers=auth(key), json={
            "name": "Engineering", "member_ids": [member.account_id]}).json()
        token = mailbox[0].token_for(member.email)
        assert member.client.get(f"/api/teams/accept?token={token}").status_code == 200
        r = owner.client.patch("/api/teams", json={"teamId": team["id"],
                                                   "action": "remove_member",
                                                   "userId": member.account_id})
        assert r.status_code == 200, r.text

        got = rec.wait_for(lambda rs: len(rs) >= 3)
        # Deliveries run concurrently: the event ids give the order of the changes.
        bodies = sorted((_verified(g.body) for g in got), key=lambda b: int(b["id"][4:]))
        assert [(b["type"], b["data"]) for b in bodies] == [
            ("team.member_added", {"team_id": team["id"], "user_id": owner.account_id,
                                   "role": "admin"}),  # the creator, its first admin
            ("team.member_added", {"team_id": team["id"], "user_id": member.account_id,
                                   "role": "editor"}),
            ("team.member_removed", {"team_id": team["id"], "user_id": member.account_id,
                                     "role": "editor"}),
        ]
        assert all(b["id"].startswith("evt_") and b["timestamp"].endswith("Z") for b in bodies)
    owner.client.close()
    member.client.close()


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
        bodies = [_verified(g.body) for g in got]
        for g, body in zip(got, bodies, strict=True):
            assert set(body) == {"id", "type", "timestamp", "data", "signature"}
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

    # Errors: unknown events, none, a bad URL, the scope.
    for events in (["file.exploded"], ["team.exploded"], []):
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
