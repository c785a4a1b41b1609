"""Webhooks against a real node: the API, every event type from S3, REST and
SFTP, signatures, retries, auto-disable, and the SSRF refusal."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterator

import boto3
import httpx
import paramiko
import pytest
from botocore.config import Config

from storage.events import TEAM_TYPES, EventType
from tests.harness import NodeProcess, started_node
from tests.rest.conftest import User, signup
from tests.rest.webhook_support import Received, receiver

# Seed 000's list (team membership events are v2-drive's only).
ALL_EVENTS = [str(t) for t in EventType if t not in TEAM_TYPES]
SFTP_PASSWORD = "sftp-password-1"
NODE_EXTRA = """
[accounts]
dashboard_requests_per_minute = 10000
login_attempts_per_minute = 200
[outbound]
allowed_networks = ["127.0.0.0/8"]
[webhooks]
poll_seconds = 0.2
retry_base_seconds = 0.1
timeout_seconds = 2
lease_seconds = 5
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A node that may deliver to loopback receivers, with fast retries."""
    with started_node(tmp_path_factory.mktemp("webhooknode"), NODE_EXTRA) as n:
        yield n


@pytest.fixture
def user(node: NodeProcess) -> Iterator[User]:
    u = signup(node)
    yield u
    u.client.close()


def s3_client(node: NodeProcess, user: User):
    return boto3.client(
        "s3", endpoint_url=node.s3_url, aws_access_key_id=user.access_key,
        aws_secret_access_key=user.secret_key, region_name="eu-central-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def create_hook(user: User, url: str, events: list[str] | None = None) -> dict:
    r = user.client.post("/api/webhooks", json={"url": url, "events": events or ALL_EVENTS})
    assert r.status_code == 201, r.text
    return r.json()


def verify(got: Received, secret: str) -> dict:
    """The parsed body, after checking its signature as the docs tell receivers to."""
    expected = hmac.new(secret.encode(), got.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(got.headers["X-CloudStorage-Signature"], expected)
    body = json.loads(got.body)
    # The documented JavaScript check signs JSON.stringify(req.body): compact.
    assert json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode() == got.body
    assert set(body) == {"event", "timestamp", "data"}
    assert got.headers["X-CloudStorage-Event"] == body["event"]
    assert got.headers["X-CloudStorage-Event-Id"].startswith("evt_")
    assert int(got.headers["X-CloudStorage-Attempt"]) >= 1
    return body


def test_create_list_update_delete(user: User) -> None:
    with receiver() as rec:
        made = create_hook(user, rec.url, ["object.created", "object.deleted"])
        assert made["id"].startswith("wh_") and made["secret"].startswith("whsec_")
        assert made["active"] is True and made["url"] == rec.url
        assert made["events"] == ["object.created", "object.deleted"]
        assert made["createdAt"].endswith("Z")
        listed = user.client.get("/api/webhooks").json()["webhooks"]
        assert [w["id"] for w in listed] == [made["id"]]
        assert "secret" not in listed[0]  # shown in full only at creation
        r = user.client.patch("/api/webhooks", json={"id": made["id"], "events": ["key.created"],
                                                     "active": False})
        assert r.status_code == 200 and r.json()["events"] == ["key.created"]
        assert r.json()["active"] is False
        r = user.client.delete("/api/webhooks", params={"id": made["id"]})
        assert r.status_code == 200 and r.json() == {"success": True}
        assert user.client.get("/api/webhooks").json()["webhooks"] == []
        r = user.client.delete("/api/webhooks", params={"id": made["id"]})
        assert r.status_code == 404 and r.json()["error"] == "NoSuchWebhook"


@pytest.mark.parametrize("body,code", [
    ({"url": "http://127.0.0.1:1/", "events": ["nope.event"]}, "InvalidWebhook"),
    ({"url": "http://127.0.0.1:1/", "events": []}, "InvalidWebhook"),
    ({"url": "ftp://127.0.0.1/", "events": ["object.created"]}, "InvalidWebhook"),
    ({"url": 12, "events": ["object.created"]}, "InvalidWebhook"),
    ({"events": ["object.created"]}, "MissingField"),
])
def test_bad_definitions_are_clear_400s(user: User, body: dict, code: str) -> None:
    r = user.client.post("/api/webhooks", json=body)
    assert r.status_code == 400 and r.json()["error"] == code, r.text
    assert r.json()["status"] == 400


@pytest.mark.parametrize("url", ["http://10.0.0.1/hook", "http://169.254.169.254/latest",
                                 "http://192.168.1.10/", "http://[fd00::1]/",
                                 "http://[::ffff:10.0.0.1]/"])
def test_private_addresses_are_refused(user: User, url: str) -> None:
    # This node allows loopback only: every other non-public range stays refused.
    r = user.client.post("/api/webhooks", json={"url": url, "events": ["object.created"]})
    assert r.status_code == 400 and r.json()["error"] == "InvalidWebhook"
    assert "non-public" in r.json()["message"]


def test_loopback_is_refused_by_default(tmp_path) -> None:
    with started_node(tmp_path) as plain:
        u = signup(plain)
        for url in ("http://127.0.0.1:8080/hook", "http://localhost:8080/hook",
                    "http://[::1]:8080/"):
            r = u.client.post("/api/webhooks", json={"url": url, "events": ["object.created"]})
            assert r.status_code == 400 and "non-public" in r.json()["message"], url
        u.client.close()


def test_every_event_type_is_delivered_signed(node: NodeProcess, user: User) -> None:
    with receiver() as rec:
        hook = create_hook(user, rec.url)
        s3 = s3_client(node, user)
        bucket = f"wh-{secrets.token_hex(4)}"
        s3.create_bucket(Bucket=bucket)                                       # bucket.created
        s3.put_object(Bucket=bucket, Key="a.txt", Body=b"one", ContentType="text/plain")
        s3.put_object(Bucket=bucket, Key="a.txt", Body=b"two!")               # object.updated
        s3.delete_object(Bucket=bucket, Key="a.txt")                          # object.deleted
        s3.delete_bucket(Bucket=bucket)                                       # bucket.deleted
        # REST (Simple REST API) and SFTP changes.
        r = httpx.post(f"{node.web_url}/api/v1/files", headers=user.api_headers,
                       params={"bucket": user.bucket, "key": "rest.bin"}, content=b"r" * 10)
        assert r.status_code == 201, r.text
        assert user.client.post("/api/sftp", json={"password": SFTP_PASSWORD}).status_code == 200
        t = paramiko.Transport(("127.0.0.1", node.ports["sftp"]))
        t.connect(username=user.account_id, password=SFTP_PASSWORD)
        with paramiko.SFTPClient.from_transport(t) as sftp, \
                sftp.open(f"/{user.bucket}/sftp.txt", "wb") as f:
            f.write(b"over sftp")
        t.close()
        # Keys (dashboard).
        made = user.client.post("/api/keys", json={"name": "extra"})
        assert made.status_code in (200, 201), made.text
        revoked = user.client.delete("/api/keys", params={"id": made.json()["accessKey"]})
        assert revoked.status_code == 200, revoked.text
        # Shares.
        share = user.client.post("/api/shares", json={"bucket": user.bucket,
                                                      "objectKey": "rest.bin"})
        assert share.status_code == 201, share.text
        got = httpx.get(f"{node.web_url}/api/shares/download",
                        params={"code": share.json()["code"]})
        assert got.status_code == 200 and got.content == b"r" * 10
        # Quota: near the quota (warning), then over it (exceeded).
        _fill_quota(node, user)

        wanted = set(ALL_EVENTS)
        got_events = rec.wait_for(
            lambda reqs: wanted <= {json.loads(q.body)["event"] for q in reqs}, deadline=30)
        bodies = [verify(q, hook["secret"]) for q in got_events]
        by_type: dict[str, list[dict]] = {}
        for b in bodies:
            by_type.setdefault(b["event"], []).append(b["data"])
        assert {"bucket": bucket, "key": "a.txt", "size": 3, "contentType": "text/plain"} in \
            by_type["object.created"]
        assert any(d["key"] == "a.txt" and d["size"] == 4 for d in by_type["object.updated"])
        assert any(d.get("key") == "sftp.txt" and d["size"] == 9
                   for d in by_type["object.created"])
        assert any(d.get("key") == "rest.bin" for d in by_type["object.created"])
        assert {"bucket": bucket, "region": "eu-central-1"} in by_type["bucket.created"] or any(
            d["bucket"] == bucket for d in by_type["bucket.created"])
        assert any(d["bucket"] == bucket for d in by_type["bucket.deleted"])
        # Each event id arrives with one body, however often it is sent.
        seen: dict[str, bytes] = {}
        for q in got_events:
            eid = q.headers["X-CloudStorage-Event-Id"]
            assert seen.setdefault(eid, q.body) == q.body


def _fill_quota(node: NodeProcess, user: User) -> None:
    """Lower the account's quota through the admin API and cross it."""
    token = node.settings.console_token_file().read_text().strip()
    r = httpx.patch(f"{node.web_url}/admin/v1/accounts/{user.account_id}",
                    headers={"Authorization": f"Bearer {token}"}, json={"quota_bytes": 4000})
    assert r.status_code == 200, r.text
    key = {"bucket": user.bucket}
    r = httpx.post(f"{node.web_url}/api/v1/files", headers=user.api_headers,
                   params={**key, "key": "big1"}, content=b"q" * 3300)
    assert r.status_code == 201, r.text                                    # quota.warning
    r = httpx.post(f"{node.web_url}/api/v1/files", headers=user.api_headers,
                   params={**key, "key": "big2"}, content=b"q" * 3300)
    assert r.status_code in (403, 413, 507), r.text                        # quota.exceeded


def test_ten_failures_disable_and_patch_reenables(node: NodeProcess, user: User) -> None:
    with receiver(status=500, body=b"broken receiver") as rec:
        hook = create_hook(user, rec.url, ["object.created"])
        s3 = s3_client(node, user)
        for i in range(3):  # 3 events x (1 + 3 retries) attempts > 10
            s3.put_object(Bucket=user.bucket, Key=f"fail-{i}", Body=b"x")

        def state() -> dict:
            hooks = user.client.get("/api/webhooks").json()["webhooks"]
            return next(w for w in hooks if w["id"] == hook["id"])

        _poll(lambda: not state()["active"])
        # Attempts already in flight when it was disabled may add one or two.
        assert 10 <= state()["failureCount"] <= 12
        assert "10 consecutive" in state()["disabledReason"]
        attempts = len(rec.requests())
        assert 10 <= attempts <= 10 + 2  # concurrent attempts may finish together
        log = user.client.get("/api/webhooks/deliveries", params={"id": hook["id"]}).json()
        entries = log["deliveries"]
        assert entries and all(e["responseCode"] == 500 for e in entries)
        assert entries[0]["responseBody"] == "broken receiver"
        assert all(e["durationMs"] is not None for e in entries)
        # Retries carry increasing attempt numbers for the same event id.
        by_event: dict[str, list[int]] = {}
        for q in rec.requests():
            by_event.setdefault(q.headers["X-CloudStorage-Event-Id"], []).append(
                int(q.headers["X-CloudStorage-Attempt"]))
        assert max(len(v) for v in by_event.values()) == 4
        assert all(v == sorted(v) for v in by_event.values())

        # Re-enabled: the count starts again and what was still pending resumes.
        rec.status = 200
        r = user.client.patch("/api/webhooks", json={"id": hook["id"], "active": True})
        assert r.status_code == 200 and r.json()["active"] is True
        assert r.json()["failureCount"] == 0 and "disabledReason" not in r.json()
        s3.put_object(Bucket=user.bucket, Key="after", Body=b"y")
        rec.wait_for(lambda reqs: any(json.loads(q.body)["data"]["key"] == "after"
                                      for q in reqs))


def _poll(pred, deadline: float = 30) -> None:
    import time

    end = time.monotonic() + deadline
    while not pred():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.1)


def test_other_accounts_events_are_not_delivered(node: NodeProcess, user: User) -> None:
    other = signup(node)
    with receiver() as rec:
        create_hook(user, rec.url, ["object.created"])
        s3_client(node, other).put_object(Bucket=other.bucket, Key="theirs", Body=b"z")
        s3_client(node, user).put_object(Bucket=user.bucket, Key="mine", Body=b"z")
        got = rec.wait_for(lambda reqs: len(reqs) >= 1)
        assert [json.loads(q.body)["data"]["key"] for q in got] == ["mine"]
    other.client.close()


def test_webhooks_need_a_session(node: NodeProcess) -> None:
    r = httpx.get(f"{node.web_url}/api/webhooks")
    assert r.status_code == 401 and r.json()["error"] == "Unauthorized"

