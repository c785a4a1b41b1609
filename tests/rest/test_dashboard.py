"""Dashboard API against a real node: signup/login/logout, keys, explorer, SFTP settings."""

from __future__ import annotations

import httpx

from tests.harness import NodeProcess
from tests.rest.conftest import User, signup


def test_signup_gives_key_bucket_and_session(node: NodeProcess, user: User) -> None:
    cookie = user.client.cookies.get("session")
    assert cookie
    me = user.client.get("/api/auth/me")
    assert me.status_code == 200
    assert me.json()["user"]["email"] == user.email
    # The first key pair works on the REST API against the default bucket.
    r = httpx.get(f"{node.web_url}/api/v1/files", headers=user.api_headers)
    assert r.status_code == 200 and r.json() == {"files": [], "hasMore": False}
    assert user.bucket.startswith("default-")


def test_session_cookie_flags(node: NodeProcess) -> None:
    r = httpx.post(f"{node.web_url}/api/auth/signup",
                   json={"email": "flags@example.com", "password": "password123"})
    header = r.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=lax" in header and "max-age=" in header


def test_signup_errors(node: NodeProcess, user: User) -> None:
    url = f"{node.web_url}/api/auth/signup"
    dup = httpx.post(url, json={"email": user.email, "password": "another pw"})
    assert dup.status_code == 409 and dup.json()["error"] == "AccountExists"
    weak = httpx.post(url, json={"email": "weak@example.com", "password": "short"})
    assert weak.status_code == 400 and weak.json()["error"] == "WeakPassword"
    bad = httpx.post(url, content=b"not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"] == "InvalidJSON"


def test_login_logout_revokes_session(node: NodeProcess, user: User) -> None:
    c = httpx.Client(base_url=node.web_url)
    wrong = c.post("/api/auth/login", json={"email": user.email, "password": "nope nope"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "InvalidCredentials"
    ok = c.post("/api/auth/login", json={"email": user.email, "password": "correct horse"})
    assert ok.status_code == 200
    token = c.cookies.get("session")
    assert c.get("/api/keys").status_code == 200
    assert c.post("/api/auth/logout").json() == {"success": True}
    # The server forgot the session: replaying the old cookie fails.
    replay = httpx.get(f"{node.web_url}/api/keys", cookies={"session": token})
    assert replay.status_code == 401
    assert replay.json()["error"] == "Unauthorized"


def test_session_endpoints_require_cookie(node: NodeProcess) -> None:
    for method, path in [("GET", "/api/keys"), ("POST", "/api/keys"), ("DELETE", "/api/keys?id=x"),
                         ("GET", "/api/explorer"), ("GET", "/api/sftp"), ("POST", "/api/sftp"),
                         ("DELETE", "/api/sftp"), ("GET", "/api/auth/me")]:
        r = httpx.request(method, f"{node.web_url}{path}")
        assert r.status_code == 401, path
        assert r.headers["content-type"].startswith("application/json")
        assert r.json()["error"] == "Unauthorized"


def test_keys_create_list_delete_limit(node: NodeProcess, user: User) -> None:
    c = user.client
    created = c.post("/api/keys", json={"name": "production-key"})
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"accessKey", "secretKey"} and body["accessKey"].startswith("CS")
    listed = c.get("/api/keys").json()["keys"]
    assert [k["name"] for k in listed] == ["first key", "production-key"]
    assert all("secretKey" not in k for k in listed)
    # The new key works at once...
    h = {"Authorization": f"Bearer {body['accessKey']}:{body['secretKey']}"}
    assert httpx.get(f"{node.web_url}/api/v1/files", headers=h).status_code == 200
    # ...and stops working the moment it is deleted.
    assert c.delete(f"/api/keys?id={body['accessKey']}").json() == {"success": True}
    r = httpx.get(f"{node.web_url}/api/v1/files", headers=h)
    assert r.status_code == 401 and r.json()["error"] == "Unauthorized"
    assert c.delete(f"/api/keys?id={body['accessKey']}").status_code == 404
    for _ in range(4):
        assert c.post("/api/keys", json={"name": "k"}).status_code == 201
    over = c.post("/api/keys", json={"name": "sixth"})
    assert over.status_code == 409 and over.json()["error"] == "TooManyAccessKeys"


def test_dashboard_rate_limit_429(node: NodeProcess, user: User) -> None:
    codes = [user.client.get("/api/keys") for _ in range(40)]
    limited = [r for r in codes if r.status_code == 429]
    assert limited, "30 requests per minute must be enforced"
    assert sum(r.status_code == 200 for r in codes) <= 30
    r = limited[0]
    assert int(r.headers["Retry-After"]) >= 1
    assert r.json()["error"] == "TooManyRequests"


def test_explorer_directories_files_and_pages(node: NodeProcess, user: User) -> None:
    h = user.api_headers
    for key, ctype in [("logo.png", "image/png"), ("documents/readme.txt", "text/plain"),
                       ("documents/spec.pdf", "application/pdf"),
                       ("documents/reports/q1.csv", "text/csv")]:
        r = httpx.post(f"{node.web_url}/api/v1/files?key={key}", content=b"x" * 10,
                       headers={**h, "Content-Type": ctype})
        assert r.status_code == 201, r.text
    root = user.client.get(f"/api/explorer?bucket={user.bucket}").json()
    assert root["bucket"] == user.bucket and root["prefix"] == ""
    assert root["files"][0] == {"key": "documents/", "type": "directory"}
    logo = root["files"][1]
    assert logo["key"] == "logo.png" and logo["type"] == "file" and logo["size"] == 10
    assert logo["contentType"] == "image/png" and logo["lastModified"].endswith("Z")
    sub = user.client.get(f"/api/explorer?bucket={user.bucket}&prefix=documents/").json()
    assert [f["key"] for f in sub["files"]] == [
        "documents/readme.txt", "documents/reports/", "documents/spec.pdf"]
    # Pages: limit=1 walks the folder with the cursor.
    keys, cursor = [], ""
    while True:
        page = user.client.get(f"/api/explorer?bucket={user.bucket}&prefix=documents/&limit=1"
                               + (f"&cursor={cursor}" if cursor else "")).json()
        keys += [f["key"] for f in page["files"]]
        if not page.get("hasMore"):
            break
        cursor = page["nextCursor"]
    assert keys == ["documents/readme.txt", "documents/reports/", "documents/spec.pdf"]


def test_explorer_other_accounts_bucket_403_and_missing_404(node: NodeProcess, user: User) -> None:
    other = signup(node)
    r = user.client.get(f"/api/explorer?bucket={other.bucket}")
    assert r.status_code == 403 and r.json()["error"] == "AccessDenied"
    r = user.client.get("/api/explorer?bucket=no-such-bucket-here")
    assert r.status_code == 404 and r.json()["error"] == "NoSuchBucket"


def test_sftp_settings(node: NodeProcess, user: User) -> None:
    c = user.client
    assert c.get("/api/sftp").json()["enabled"] is False
    short = c.post("/api/sftp", json={"password": "short"})
    assert short.status_code == 400 and short.json()["error"] == "WeakPassword"
    on = c.post("/api/sftp", json={"password": "sftp-password"}).json()
    assert on == {"enabled": True, "username": user.account_id, "host": "127.0.0.1",
                  "port": node.ports["sftp"]}
    assert c.get("/api/sftp").json() == on
    assert c.delete("/api/sftp").json() == {"enabled": False}
    assert c.get("/api/sftp").json()["enabled"] is False
    bad = c.post("/api/sftp/keys", json={"publicKey": "ssh-ed25519 garbage"})
    assert bad.status_code == 400 and bad.json()["error"] == "InvalidPublicKey"
