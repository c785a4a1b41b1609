"""One event stream from the storage core: every committed change is recorded
once in the events outbox, whatever protocol made it (S3, REST, SFTP)."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import boto3
import httpx
from botocore.config import Config

from tests.harness import NodeProcess
from tests.sftp.conftest import SftpUser, paramiko_client


def recorded(node: NodeProcess, account_id: str, after: int = 0) -> list[dict]:
    """The account's events in the outbox after id ``after``, oldest first."""
    path = Path(node.db_url.removeprefix("sqlite://"))
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM events WHERE account_id = ? AND id > ? ORDER BY id",
                          (account_id, after)).fetchall()
    return [{**dict(r), "data": json.loads(r["data"])} for r in rows]


def last_id(node: NodeProcess, account_id: str) -> int:
    events = recorded(node, account_id)
    return events[-1]["id"] if events else 0


def test_one_object_event_per_change_on_every_protocol(
    node: NodeProcess, sftp_user: SftpUser
) -> None:
    user = sftp_user.user
    s3 = boto3.client(
        "s3", endpoint_url=node.s3_url, region_name=node.region,
        aws_access_key_id=user.access_key, aws_secret_access_key=user.secret_key,
        config=Config(retries={"max_attempts": 1}),
    )
    mark = last_id(node, user.account_id)
    s3.put_object(Bucket=user.bucket, Key="via-s3.txt", Body=b"s3", ContentType="text/plain")
    r = httpx.post(f"{node.web_url}/api/v1/files",
                   params={"key": "via-rest.txt", "bucket": user.bucket},
                   headers=user.api_headers, content=b"rest!", timeout=30)
    assert r.status_code == 201, r.text
    sftp = paramiko_client(sftp_user)
    try:
        sftp.putfo(io.BytesIO(b"sftp-bytes"), f"/{user.bucket}/via-sftp.txt")
        # Overwrite (updated) and remove (deleted) over SFTP too.
        sftp.putfo(io.BytesIO(b"sftp-bytes-2"), f"/{user.bucket}/via-sftp.txt")
        sftp.remove(f"/{user.bucket}/via-sftp.txt")
    finally:
        sftp.close()

    got = [(e["type"], e["origin"], e["key"], e["data"].get("size"))
           for e in recorded(node, user.account_id, mark)]
    assert got == [
        ("object.created", "s3", "via-s3.txt", 2),
        ("object.created", "rest", "via-rest.txt", 5),
        ("object.created", "sftp", "via-sftp.txt", 10),
        ("object.updated", "sftp", "via-sftp.txt", 12),
        ("object.deleted", "sftp", "via-sftp.txt", 12),
    ]
    first = recorded(node, user.account_id, mark)[0]
    assert first["data"] == {"bucket": user.bucket, "key": "via-s3.txt", "size": 2,
                             "contentType": "text/plain"}


def test_bucket_and_key_events(node: NodeProcess, sftp_user: SftpUser) -> None:
    user = sftp_user.user
    mark = last_id(node, user.account_id)
    r = user.client.post("/api/keys", json={"name": "ci"})
    assert r.status_code in (200, 201), r.text
    new_key = r.json().get("accessKey") or r.json().get("accessKeyId")
    sftp = paramiko_client(sftp_user)
    try:
        sftp.mkdir("/events-bucket")
        sftp.rmdir("/events-bucket")
    finally:
        sftp.close()
    got = [(e["type"], e["origin"], e["bucket"]) for e in recorded(node, user.account_id, mark)]
    assert got == [("key.created", "dashboard", None), ("bucket.created", "sftp", "events-bucket"),
                   ("bucket.deleted", "sftp", "events-bucket")]
    assert recorded(node, user.account_id, mark)[0]["data"]["accessKeyId"] == new_key
