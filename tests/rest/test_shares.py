"""Share links against a live node: every endpoint and field, with real HTTP.

The two-node race on the last download is in test_shares_race.py.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.harness import NodeProcess, started_node
from tests.rest.conftest import User, signup

ATTEMPTS = 3


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """A node whose dashboard limit does not get in the way of many requests."""
    extra = ("[accounts]\ndashboard_requests_per_minute = 10000\n"
             "login_attempts_per_minute = 200\n"
             f"[shares]\npassword_attempts_per_minute = {ATTEMPTS}\n")
    with started_node(tmp_path_factory.mktemp("sharenode"), extra) as n:
        yield n


@pytest.fixture
def user(node: NodeProcess) -> Iterator[User]:
    u = signup(node)
    yield u
    u.client.close()


def put_file(user: User, key: str, data: bytes, content_type: str = "text/plain") -> None:
    """Store an object through the Simple REST API."""
    r = user.client.post("/api/v1/files", params={"bucket": user.bucket, "key": key},
                         content=data, headers={**user.api_headers,
                                                "Content-Type": content_type})
    assert r.status_code == 201, r.text


def share(user: User, key: str, **options: object) -> dict:
    body = {"bucket": user.bucket, "objectKey": key, **options}
    r = user.client.post("/api/shares", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def meta_db(node: NodeProcess) -> sqlite3.Connection:
    return sqlite3.connect(node.db_url.removeprefix("sqlite://"))


def test_create_list_download_fields(node: NodeProcess, user: User) -> None:
    data = b"quarterly numbers\n" * 100
    put_file(user, "docs/report.txt", data)
    created = share(user, "docs/report.txt", fileName="report.txt", fileSize=len(data),
                    expiresIn="7d", maxDownloads=50)
    assert set(created) == {"id", "code", "url", "expiresAt", "maxDownloads"}
    assert created["id"].startswith("share_") and created["maxDownloads"] == 50
    # >= 64 random bits, url-safe.
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,}", created["code"])
    assert created["url"] == f"{node.web_url}/s/{created['code']}"
    expires = datetime.strptime(created["expiresAt"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(expires - datetime.now(UTC) - timedelta(days=7)) < timedelta(minutes=5)

    # Public download: no cookie, as curl would do it.
    r = httpx.get(f"{node.web_url}/api/shares/download", params={"code": created["code"]})
    assert r.status_code == 200 and r.content == data
    assert "report.txt" in r.headers["content-disposition"]
    assert r.headers["content-security-policy"] == "sandbox"
    r = httpx.get(created["url"])  # curl's Accept: */* gets the file itself
    assert r.status_code == 200 and r.content == data

    listed = user.client.get("/api/shares").json()["shares"]
    assert len(listed) == 1
    entry = listed[0]
    assert {k: entry[k] for k in ("id", "code", "fileName", "downloads", "maxDownloads",
                                  "expiresAt", "active")} == {
        "id": created["id"], "code": created["code"], "fileName": "report.txt",
        "downloads": 2, "maxDownloads": 50, "expiresAt": created["expiresAt"], "active": True}


def test_range_requests_on_share_downloads(node: NodeProcess, user: User) -> None:
    data = bytes(range(256)) * 40
    put_file(user, "bin/blob.bin", data, "application/octet-stream")
    code = share(user, "bin/blob.bin")["code"]
    r = httpx.get(f"{node.web_url}/s/{code}", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == data[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(data)}"
    r = httpx.get(f"{node.web_url}/s/{code}", headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == data[-10:]
    r = httpx.get(f"{node.web_url}/s/{code}", headers={"Range": f"bytes={len(data)}-"})
    assert r.status_code == 416 and r.json()["error"] == "InvalidRange"
    head = httpx.head(f"{node.web_url}/s/{code}")  # a HEAD is not a download
    assert head.status_code == 200 and head.headers["content-length"] == str(len(data))
    downloads = user.client.get("/api/shares").json()["shares"][0]["downloads"]
    assert downloads == 2


def test_page_for_browsers_and_unknown_code(node: NodeProcess, user: User) -> None:
    put_file(user, "a <b>.txt", b"hello")
    code = share(user, "a <b>.txt")["code"]
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    r = httpx.get(f"{node.web_url}/s/{code}", headers=html)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "a &lt;b&gt;.txt" in r.text and "5 bytes" in r.text
    assert f'href="/s/{code}?download=1"' in r.text and 'type="password"' not in r.text
    assert "script-src" not in r.headers["content-security-policy"]
    r = httpx.get(f"{node.web_url}/s/{code}?download=1", headers=html)
    assert r.status_code == 200 and r.content == b"hello"
    r = httpx.get(f"{node.web_url}/s/AAAAAAAAAAAAAAAA", headers=html)
    assert r.status_code == 404 and "Link unavailable" in r.text
    r = httpx.get(f"{node.web_url}/s/AAAAAAAAAAAAAAAA")
    assert r.status_code == 404 and r.json()["error"] == "NotFound"
    r = httpx.get(f"{node.web_url}/api/shares/download")
    assert r.status_code == 400 and r.json()["status"] == 400


def test_password_protection_and_rate_limit(node: NodeProcess, user: User) -> None:
    put_file(user, "secret.txt", b"top secret")
    created = share(user, "secret.txt", password="secret123")
    url = f"{node.web_url}/s/{created['code']}"
    r = httpx.get(url)
    assert r.status_code == 401 and r.json()["error"] == "PasswordRequired"
    page = httpx.get(url, headers={"Accept": "text/html"})
    assert page.status_code == 200 and 'type="password"' in page.text
    assert "top secret" not in page.text
    r = httpx.get(url, headers={"X-Share-Password": "secret123"})
    assert r.status_code == 200 and r.content == b"top secret"
    # The page's form posts the password; the answer is the file.
    r = httpx.post(url, data={"password": "secret123"})
    assert r.status_code == 200 and r.content == b"top secret"
    r = httpx.post(url, data={"password": "wrong"})
    assert r.status_code == 403 and "not correct" in r.text and 'type="password"' in r.text
    r = httpx.post(url, data={"password": "x" * 5000})  # the page's form is small
    assert r.status_code == 413 and r.json()["error"] == "PayloadTooLarge"
    for _ in range(ATTEMPTS - 1):
        r = httpx.get(f"{node.web_url}/api/shares/download",
                      params={"code": created["code"], "password": "nope"})
        assert r.status_code == 403 and r.json()["error"] == "InvalidPassword"
    # Over the limit: refused even with the right password, with Retry-After.
    r = httpx.get(url, headers={"X-Share-Password": "secret123"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    stored = meta_db(node).execute("SELECT password_hash FROM shares WHERE id = ?",
                                   (created["id"],)).fetchone()[0]
    assert stored.startswith("scrypt$") and "secret123" not in stored


def test_address_limit_ignores_client_sent_address(tmp_path: Path) -> None:
    """Guesses over many shares from one address are limited per address, and a
    client cannot pick its own address with a header.  (Its own node: it uses
    up 127.0.0.1's guesses.)"""
    extra = f"[shares]\npassword_attempts_per_minute = {ATTEMPTS}\n"
    with started_node(tmp_path, extra) as node:
        user = signup(node)
        _guess_from_many_addresses(node, user)
        user.client.close()


def _guess_from_many_addresses(node: NodeProcess, user: User) -> None:
    put_file(user, "guarded.txt", b"guarded")
    codes = [share(user, "guarded.txt", password="right-one")["code"] for _ in range(16)]
    statuses = []
    for i in range(ATTEMPTS * 10 + 1):  # the address limit is ten times the share's
        code = codes[i // (ATTEMPTS - 1)]  # never ATTEMPTS on one share
        r = httpx.get(f"{node.web_url}/s/{code}", headers={
            "X-Share-Password": "wrong", "Remote-Addr": f"203.0.113.{i}",
            "X-Forwarded-For": f"198.51.100.{i}"})
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {403}


def test_max_downloads_then_gone(node: NodeProcess, user: User) -> None:
    put_file(user, "limited.txt", b"twice only")
    created = share(user, "limited.txt", maxDownloads=2)
    url = f"{node.web_url}/s/{created['code']}"
    assert [httpx.get(url).status_code for _ in range(3)] == [200, 200, 410]
    r = httpx.get(url)
    assert r.json() == {"error": "ShareGone", "status": 410,
                        "message": "This share link has expired or is no longer available."}
    page = httpx.get(url, headers={"Accept": "text/html"})
    assert page.status_code == 410 and "limited.txt" not in page.text
    entry = user.client.get("/api/shares").json()["shares"][0]
    assert entry["downloads"] == 2 and entry["active"] is False


def test_deactivate_and_other_tenants(node: NodeProcess, user: User) -> None:
    put_file(user, "mine.txt", b"mine")
    created = share(user, "mine.txt")
    other = signup(node)
    try:
        # Another tenant can neither share my object nor deactivate my share.
        r = other.client.post("/api/shares", json={"bucket": user.bucket,
                                                   "objectKey": "mine.txt"})
        assert r.status_code == 403 and r.json()["error"] == "AccessDenied"
        r = other.client.delete("/api/shares", params={"id": created["id"]})
        assert r.status_code == 404
        assert other.client.get("/api/shares").json() == {"shares": []}
        assert httpx.get(created["url"]).status_code == 200
    finally:
        other.client.close()
    r = user.client.delete("/api/shares", params={"id": created["id"]})
    assert r.status_code == 200 and r.json()["success"] is True
    assert httpx.get(created["url"]).status_code == 410
    assert user.client.get("/api/shares").json()["shares"][0]["active"] is False
    assert httpx.post(f"{node.web_url}/api/shares", json={}).status_code == 401


def test_invalid_options_are_refused(node: NodeProcess, user: User) -> None:
    put_file(user, "x.txt", b"x")
    cases = [({"expiresIn": "2h"}, "InvalidExpiry"), ({"maxDownloads": 0}, "InvalidField"),
             ({"maxDownloads": "ten"}, "InvalidField"), ({"maxDownloads": True}, "InvalidField"),
             ({"password": 123}, "InvalidField"), ({"fileSize": 99}, "SizeMismatch"),
             ({"objectKey": "missing.txt"}, "NotFound"), ({"bucket": "nosuchbucket-zz"},
                                                          "NoSuchBucket")]
    for extra, code in cases:
        body = {"bucket": user.bucket, "objectKey": "x.txt", **extra}
        r = user.client.post("/api/shares", json=body)
        assert r.json()["error"] == code, (extra, r.text)
        assert r.status_code == r.json()["status"] and r.status_code in (400, 404, 409)


def test_expired_share_is_gone(node: NodeProcess, user: User) -> None:
    put_file(user, "old.txt", b"old")
    created = share(user, "old.txt", expiresIn="1h")
    assert httpx.get(created["url"]).status_code == 200
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(sep=" ")
    with meta_db(node) as db:
        db.execute("UPDATE shares SET expires_at = ? WHERE id = ?", (past, created["id"]))
    assert httpx.get(created["url"]).status_code == 410
    assert user.client.get("/api/shares").json()["shares"][0]["active"] is False


def test_share_pins_the_version(node: NodeProcess, user: User) -> None:
    put_file(user, "pinned.txt", b"first")
    created = share(user, "pinned.txt")
    assert httpx.get(created["url"]).content == b"first"
    put_file(user, "pinned.txt", b"second, private")
    r = httpx.get(created["url"])
    assert r.status_code == 410 and b"private" not in r.content


def test_upload_and_share_in_one_step(node: NodeProcess, user: User) -> None:
    files = {"file": ("presentation.pdf", b"%PDF-1.4 slides", "application/pdf")}
    r = user.client.post("/api/shares/upload", files=files,
                         data={"password": "pw", "expiresIn": "24h", "maxDownloads": "3"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["maxDownloads"] == 3 and created["expiresAt"]
    r = httpx.get(created["url"], headers={"X-Share-Password": "pw"})
    assert r.status_code == 200 and r.content == b"%PDF-1.4 slides"
    assert r.headers["content-type"] == "application/pdf"
    entry = user.client.get("/api/shares").json()["shares"][0]
    assert entry["fileName"] == "presentation.pdf" and entry["objectKey"].startswith("shares/")
    r = httpx.post(f"{node.web_url}/api/shares/upload", files=files)
    assert r.status_code == 401
    r = user.client.post("/api/shares/upload", files=files, data={"expiresIn": "1y"})
    assert r.status_code == 400 and r.json()["error"] == "InvalidExpiry"


def test_events_recorded_with_the_change(node: NodeProcess, user: User) -> None:
    put_file(user, "ev.txt", b"events")
    created = share(user, "ev.txt")
    assert httpx.get(created["url"]).status_code == 200
    rows = meta_db(node).execute(
        "SELECT type, bucket, \"key\", data, origin FROM events WHERE account_id = ? "
        "AND type LIKE 'share.%' ORDER BY id", (user.account_id,)).fetchall()
    assert [r[0] for r in rows] == ["share.created", "share.downloaded"]
    assert all(r[1] == user.bucket and r[2] == "ev.txt" and r[4] == "share" for r in rows)
    assert created["id"] in rows[0][3] and '"downloads":1' in rows[1][3]
