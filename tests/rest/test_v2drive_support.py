"""Helpers of the v2-drive tests (no tests here): users, keys, error shapes."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import boto3
import httpx
import paramiko
from botocore.config import Config

from tests.harness import NodeProcess
from tests.rest.conftest import User, signup
from tests.rest.test_v1pro_support import admin_patch

SFTP_PASSWORD = "sftp-password-20"


def new_key(user: User, **body: Any) -> dict[str, Any]:
    """Create a v2-drive key through the session-authenticated dashboard route."""
    r = user.client.post("/api/v2drive/keys", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def drive_user(node: NodeProcess, plan: str = "1tb", **key: Any) -> tuple[User, str]:
    """A signed-up user on ``plan`` (Pro by default) with one key."""
    user = signup(node)
    if plan != "free":
        admin_patch(node, user.account_id, plan=plan)
    return user, new_key(user, name="script", **key)["key"]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def error_of(r: httpx.Response) -> tuple[int, str]:
    """(status, code) of a v2-drive error, checking the document's shape."""
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"code", "message", "status", "request_id", "doc_url"}, err
    assert err["status"] == r.status_code and err["request_id"].startswith("req_")
    assert err["doc_url"] == f"https://docs.cloudy.io/errors/{err['code']}"
    assert r.headers["X-Request-Id"] == err["request_id"]
    return r.status_code, err["code"]


def curl(*args: str) -> tuple[int, dict]:
    """Run curl as the document does; (status, JSON body)."""
    done = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True,
                          text=True, timeout=60, check=True)
    body, status = done.stdout.rsplit("\n", 1)
    return int(status), json.loads(body) if body.strip() else {}


def s3_client(node: NodeProcess, user: User) -> Any:
    return boto3.client("s3", endpoint_url=node.s3_url, region_name=node.region,
                        aws_access_key_id=user.access_key,
                        aws_secret_access_key=user.secret_key,
                        config=Config(retries={"max_attempts": 1},
                                      s3={"addressing_style": "path"}))


def sftp_client(user: User) -> tuple[paramiko.Transport, paramiko.SFTPClient]:
    """An SFTP session of the user (its password set through the dashboard)."""
    r = user.client.post("/api/sftp", json={"password": SFTP_PASSWORD})
    assert r.status_code == 200, r.text
    transport = paramiko.Transport(("127.0.0.1", r.json()["port"]))
    transport.connect(username=r.json()["username"], password=SFTP_PASSWORD)
    sftp = paramiko.SFTPClient.from_transport(transport)
    assert sftp is not None
    return transport, sftp


def upload(node: NodeProcess, key: str, name: str, data: bytes,
           parent: str | None = None) -> dict[str, Any]:
    """POST /v2/files then PUT the bytes to the presigned URL; the file."""
    body: dict[str, Any] = {"name": name, "size": len(data)}
    if parent:
        body["parent_folder_id"] = parent
    r = httpx.post(f"{node.web_url}/v2/files", json=body, headers=auth(key))
    assert r.status_code == 201, r.text
    put = httpx.put(r.json()["upload_url"], content=data)
    assert put.status_code == 200, put.text
    return put.json()
