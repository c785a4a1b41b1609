"""v2-drive audit logs (seed 004): every change through any protocol, read
from the core's events table, with the document's filters and pages."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import boto3
import httpx
from botocore.config import Config

from tests.harness import NodeProcess
from tests.rest.test_v2drive_support import (
    auth,
    drive_user,
    error_of,
    new_key,
    s3_client,
    sftp_client,
    upload,
)


def test_changes_of_every_protocol_are_in_the_audit_log(node: NodeProcess) -> None:
    user, key = drive_user(node, plan="10tb")  # Business
    url = f"{node.web_url}/v2/audit-logs"
    transport, sftp = sftp_client(user)
    try:
        sftp.putfo(io.BytesIO(b"over sftp"), f"/{user.bucket}/from-sftp.txt")
    finally:
        sftp.close()
        transport.close()
    s3_client(node, user).put_object(Bucket=user.bucket, Key="from-s3.txt", Body=b"s3")
    f = upload(node, key, "from-drive.txt", b"drive")
    assert httpx.post(f"{node.web_url}/v2/folders", json={"name": "Board"},
                      headers=auth(key)).status_code == 201

    r = httpx.get(url, headers=auth(key))
    assert r.status_code == 200, r.text
    page = r.json()
    assert set(page) == {"data", "has_more", "next_cursor", "total_count"}
    created = [e for e in page["data"] if e["action"] == "file.created"]
    by_name = {e["resource"]["name"]: e for e in created}
    assert {"from-sftp.txt", "from-s3.txt", "from-drive.txt"} <= set(by_name)
    sftp_entry = by_name["from-sftp.txt"]
    assert set(sftp_entry) >= {"id", "timestamp", "actor", "action", "resource",
                               "ip_address", "user_agent"}
    assert sftp_entry["origin"] == "sftp" and by_name["from-s3.txt"]["origin"] == "s3"
    assert by_name["from-drive.txt"]["origin"] == "v2drive"
    assert by_name["from-drive.txt"]["resource"]["id"] == f["id"]
    assert sftp_entry["actor"] == {"id": user.account_id, "email": user.email}
    assert sftp_entry["id"].startswith("log_") and sftp_entry["timestamp"].endswith("Z")
    ids = [int(e["id"][4:]) for e in page["data"]]
    assert ids == sorted(ids, reverse=True)  # newest first

    # Filters: action, actor, date range, client address.
    folders = httpx.get(url, params={"action": "folder.created"}, headers=auth(key)).json()
    assert [(e["action"], e["resource"]["type"], e["resource"]["name"])
            for e in folders["data"]] == [("folder.created", "folder", "Board")]
    only = httpx.get(url, params={"action": "file.created"}, headers=auth(key)).json()
    assert {e["action"] for e in only["data"]} == {"file.created"}
    assert only["total_count"] == len(created)
    mine = httpx.get(url, params={"actor_id": user.account_id}, headers=auth(key)).json()
    assert mine["total_count"] == page["total_count"]
    assert httpx.get(url, params={"actor_id": "user_nobody"},
                     headers=auth(key)).json()["total_count"] == 0
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert httpx.get(url, params={"start_date": later},
                     headers=auth(key)).json()["data"] == []
    assert httpx.get(url, params={"ip_address": "203.0.113.42"},
                     headers=auth(key)).json()["total_count"] == 0

    # Keyset pages walk every entry once.
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        step = httpx.get(url, params=params, headers=auth(key)).json()
        assert step["total_count"] == page["total_count"]
        seen += [e["id"] for e in step["data"]]
        if not step["has_more"]:
            break
        cursor = step["next_cursor"]
    assert seen == [e["id"] for e in page["data"]]

    # Errors of the endpoint.
    assert error_of(httpx.get(url, params={"action": "file.exploded"}, headers=auth(key))) == (
        400, "invalid_request")
    assert error_of(httpx.get(url, params={"start_date": "last tuesday"},
                              headers=auth(key))) == (400, "invalid_request")
    assert error_of(httpx.get(url, params={"cursor": "bm9wZQ"}, headers=auth(key))) == (
        400, "invalid_request")
    files_only = new_key(user, scopes=["files.read"])["key"]
    assert error_of(httpx.get(url, headers=auth(files_only))) == (403, "insufficient_scope")
    user.client.close()

    pro, pro_key = drive_user(node)
    assert error_of(httpx.get(url, headers=auth(pro_key))) == (403, "plan_upgrade_required")
    pro.client.close()


def test_entries_name_the_client_of_every_protocol(node: NodeProcess) -> None:
    """ip_address and user_agent of the request (or SFTP session) that made
    each change, and the ip_address filter over them."""
    user, key = drive_user(node, plan="10tb")
    url = f"{node.web_url}/v2/audit-logs"
    s3 = boto3.client("s3", endpoint_url=node.s3_url, region_name=node.region,
                      aws_access_key_id=user.access_key, aws_secret_access_key=user.secret_key,
                      config=Config(retries={"max_attempts": 1}, user_agent="audit-s3/1.0",
                                    s3={"addressing_style": "path"}))
    s3.put_object(Bucket=user.bucket, Key="agent-s3.txt", Body=b"s3")
    r = httpx.post(f"{node.web_url}/v2/files", json={"name": "agent-drive.txt", "size": 5},
                   headers={**auth(key), "User-Agent": "audit-drive/2.0"})
    assert r.status_code == 201, r.text
    put = httpx.put(r.json()["upload_url"], content=b"drive",
                    headers={"User-Agent": "audit-drive/2.0"})
    assert put.status_code == 200, put.text
    transport, sftp = sftp_client(user)
    try:
        sftp.putfo(io.BytesIO(b"sftp"), f"/{user.bucket}/agent-sftp.txt")
    finally:
        sftp.close()
        transport.close()

    page = httpx.get(url, params={"action": "file.created"}, headers=auth(key)).json()
    by_name = {e["resource"]["name"]: e for e in page["data"]}
    s3_entry, drive_entry = by_name["agent-s3.txt"], by_name["agent-drive.txt"]
    assert (s3_entry["ip_address"], s3_entry["origin"]) == ("127.0.0.1", "s3")
    assert s3_entry["user_agent"].startswith("audit-s3/1.0")
    assert (drive_entry["ip_address"], drive_entry["user_agent"], drive_entry["origin"]) == (
        "127.0.0.1", "audit-drive/2.0", "v2drive")
    sftp_entry = by_name["agent-sftp.txt"]
    assert sftp_entry["ip_address"] == "127.0.0.1"
    assert sftp_entry["user_agent"].startswith("SSH-2.0-paramiko")  # the client's version
    local = httpx.get(url, params={"ip_address": "127.0.0.1", "action": "file.created"},
                      headers=auth(key)).json()
    assert {"agent-s3.txt", "agent-drive.txt", "agent-sftp.txt"} <= {
        e["resource"]["name"] for e in local["data"]}
    user.client.close()
