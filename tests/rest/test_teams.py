"""Teams: the Teams API, invites mailed to a local SMTP sink, and what each
role may do on a shared bucket over REST, the explorer and SFTP, against a
real node process (and two node processes on one PostgreSQL database)."""

from __future__ import annotations

import email
import email.policy
import io
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from aiosmtpd.controller import Controller
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from tests.harness import NodeProcess, free_port, prepare_node, started_node
from tests.rest.conftest import User, signup
from tests.sftp.conftest import SFTP_PASSWORD, SftpUser, paramiko_client

LIMITS = '[accounts]\ndashboard_requests_per_minute = 1000\nlogin_attempts_per_minute = 200\n'


class Mailbox:
    """An aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        with self._lock:
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append((list(envelope.rcpt_tos), msg.get_content()))
        return "250 OK"

    def token_for(self, email: str, deadline: float = 10) -> str:
        """The invite token of the latest message to ``email`` (polled with a deadline)."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            with self._lock:
                found = [body for rcpt, body in self.messages if email in rcpt]
            if found:
                match = re.search(r"accept\?token=([A-Za-z0-9_\-%]+)", found[-1])
                assert match, found[-1]
                return match.group(1)
            time.sleep(0.05)
        raise AssertionError(f"no invite mailed to {email}")


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    """A local SMTP sink (aiosmtpd, in its own thread)."""
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory,
         mailbox: tuple[Mailbox, int]) -> Iterator[NodeProcess]:
    """A node mailing invites to the sink."""
    smtp = f'[smtp]\nhost = "127.0.0.1"\nport = {mailbox[1]}\nstarttls = false\n'
    with started_node(tmp_path_factory.mktemp("teamsnode"), LIMITS + smtp) as n:
        yield n


@dataclass
class Team:
    """A team sharing the owner's bucket: owner (admin), admin, writer, reader."""

    id: str
    bucket: str
    owner: User
    admin: User
    writer: User
    reader: User


def invite_and_accept(owner: User, team_id: str, member: User, role: str,
                      box: Mailbox) -> None:
    """Invite ``member`` as ``role`` and accept with the mailed token."""
    r = owner.client.post("/api/teams/invite",
                          json={"teamId": team_id, "email": member.email, "role": role})
    assert r.status_code == 201, r.text
    assert r.json()["email"] == member.email and r.json()["role"] == role
    token = box.token_for(member.email)
    r = member.client.get(f"/api/teams/accept?token={token}")
    assert r.status_code == 200, r.text
    assert r.json() == {"success": True, "teamId": team_id, "teamName": "Engineering",
                        "role": role}


def make_team(node: NodeProcess, box: Mailbox) -> Team:
    owner, admin, writer, reader = (signup(node) for _ in range(4))
    r = owner.client.post("/api/teams", json={"name": "Engineering"})
    assert r.status_code == 201, r.text
    team_id = r.json()["id"]
    assert r.json()["name"] == "Engineering" and r.json()["createdAt"].endswith("Z")
    for member, role in ((admin, "admin"), (writer, "write"), (reader, "read")):
        invite_and_accept(owner, team_id, member, role, box)
    r = owner.client.patch("/api/teams", json={"teamId": team_id, "action": "add_bucket",
                                               "bucketName": owner.bucket})
    assert r.status_code == 200, r.text
    return Team(team_id, owner.bucket, owner, admin, writer, reader)


@pytest.fixture
def team(node: NodeProcess, mailbox: tuple[Mailbox, int]) -> Team:
    return make_team(node, mailbox[0])


def upload(node: NodeProcess, u: User, bucket: str, key: str, data: bytes) -> httpx.Response:
    return httpx.post(f"{node.web_url}/api/v1/files?key={key}&bucket={bucket}",
                      headers=u.api_headers, content=data)


def test_list_teams_shows_role_and_counts(node: NodeProcess, team: Team) -> None:
    for u, role in ((team.owner, "admin"), (team.writer, "write"), (team.reader, "read")):
        teams = u.client.get("/api/teams").json()["teams"]
        assert teams == [{"id": team.id, "name": "Engineering", "role": role,
                          "memberCount": 4, "bucketCount": 1}]
    outsider = signup(node)
    assert outsider.client.get("/api/teams").json() == {"teams": []}


def test_each_role_over_rest_and_explorer(node: NodeProcess, team: Team) -> None:
    b = team.bucket
    r = upload(node, team.owner, b, "doc.txt", b"shared text")
    assert r.status_code == 201, r.text
    fid = r.json()["id"]
    outsider = signup(node)
    # read: list, get, explorer; no upload, no delete.
    rd = team.reader
    assert httpx.get(f"{node.web_url}/api/v1/files?bucket={b}",
                     headers=rd.api_headers).status_code == 200
    assert httpx.get(f"{node.web_url}/api/v1/files/{fid}",
                     headers=rd.api_headers).content == b"shared text"
    ex = rd.client.get(f"/api/explorer?bucket={b}")
    assert ex.status_code == 200 and [f["key"] for f in ex.json()["files"]] == ["doc.txt"]
    refused = [upload(node, rd, b, "r.txt", b"x"),
               httpx.delete(f"{node.web_url}/api/v1/files/{fid}", headers=rd.api_headers)]
    for resp in refused:
        assert resp.status_code == 403 and resp.json()["error"] == "AccessDenied", resp.text
    # write and admin: upload, overwrite, delete.
    for u in (team.writer, team.admin):
        r = upload(node, u, b, "w.txt", b"by " + u.email.encode())
        assert r.status_code == 201, r.text
        r = upload(node, u, b, "w.txt", b"again")
        assert r.status_code == 201, r.text
        assert httpx.delete(f"{node.web_url}/api/v1/files/{r.json()['id']}",
                            headers=u.api_headers).status_code in (200, 204)
    # Nobody else.
    assert httpx.get(f"{node.web_url}/api/v1/files/{fid}",
                     headers=outsider.api_headers).status_code == 403
    assert outsider.client.get(f"/api/explorer?bucket={b}").status_code == 403


def test_member_usage_is_charged_to_owner_and_events_go_to_owner(
        node: NodeProcess, team: Team) -> None:
    before = team.owner.client.get("/api/auth/me").json()["user"]["usedBytes"]
    writer_before = team.writer.client.get("/api/auth/me").json()["user"]["usedBytes"]
    r = upload(node, team.writer, team.bucket, "charged.bin", b"z" * 1000)
    assert r.status_code == 201, r.text
    assert team.owner.client.get("/api/auth/me").json()["user"]["usedBytes"] == before + 1000
    assert team.writer.client.get("/api/auth/me").json()["user"]["usedBytes"] == writer_before
    db = sqlite3.connect(node.settings.metadata.url.removeprefix("sqlite://"))
    try:
        rows = db.execute("SELECT type, account_id FROM events WHERE bucket = ? AND key = ?",
                          (team.bucket, "charged.bin")).fetchall()
    finally:
        db.close()
    assert rows == [("object.created", team.owner.account_id)]


def s3_client(node: NodeProcess, u: User) -> Any:
    """boto3 with the member's OWN keys (retries off: errors must surface)."""
    return boto3.client(
        "s3", endpoint_url=node.s3_url, region_name=node.region,
        aws_access_key_id=u.access_key, aws_secret_access_key=u.secret_key,
        config=BotoConfig(retries={"total_max_attempts": 1, "mode": "standard"},
                          s3={"addressing_style": "path"}))


def _s3_refused(call: Any) -> None:
    with pytest.raises(ClientError) as err:
        call()
    assert err.value.response["Error"]["Code"] == "AccessDenied"


def test_each_role_over_s3(node: NodeProcess, team: Team) -> None:
    b = team.bucket
    owner = s3_client(node, team.owner)
    owner.put_object(Bucket=b, Key="s3.txt", Body=b"over s3")
    reader, writer, admin = (s3_client(node, u) for u in (team.reader, team.writer, team.admin))
    # ListBuckets shows the team bucket to every member, under its own name.
    names = {x["Name"] for x in reader.list_buckets()["Buckets"]}
    assert names == {team.reader.bucket, b}
    # read: list, head, get; nothing that writes.
    assert [o["Key"] for o in reader.list_objects_v2(Bucket=b)["Contents"]] == ["s3.txt"]
    assert reader.head_object(Bucket=b, Key="s3.txt")["ContentLength"] == 7
    assert reader.get_object(Bucket=b, Key="s3.txt")["Body"].read() == b"over s3"
    _s3_refused(lambda: reader.put_object(Bucket=b, Key="r.txt", Body=b"x"))
    _s3_refused(lambda: reader.delete_object(Bucket=b, Key="s3.txt"))
    _s3_refused(lambda: reader.create_multipart_upload(Bucket=b, Key="m"))
    # write: upload, copy, multipart, delete; not the bucket's settings.
    writer.put_object(Bucket=b, Key="w.txt", Body=b"w")
    writer.copy_object(Bucket=b, Key="w2.txt", CopySource={"Bucket": b, "Key": "w.txt"})
    up = writer.create_multipart_upload(Bucket=b, Key="mp")["UploadId"]
    etag = writer.upload_part(Bucket=b, Key="mp", UploadId=up, PartNumber=1, Body=b"p")["ETag"]
    writer.complete_multipart_upload(Bucket=b, Key="mp", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": etag}]})
    writer.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "w2.txt"}, {"Key": "mp"}]})
    _s3_refused(lambda: writer.put_bucket_versioning(
        Bucket=b, VersioningConfiguration={"Status": "Enabled"}))
    # admin: also the bucket's settings.
    admin.put_bucket_tagging(Bucket=b, Tagging={"TagSet": [{"Key": "team", "Value": "1"}]})
    assert reader.get_object(Bucket=b, Key="w.txt")["Body"].read() == b"w"
    # Outsiders get nothing.
    outsider = s3_client(node, signup(node))
    _s3_refused(lambda: outsider.get_object(Bucket=b, Key="s3.txt"))
    assert b not in {x["Name"] for x in outsider.list_buckets()["Buckets"]}


def _enable_sftp(u: User) -> SftpUser:
    r = u.client.post("/api/sftp", json={"password": SFTP_PASSWORD})
    assert r.status_code == 200, r.text
    return SftpUser(u, r.json()["username"], r.json()["port"])


def test_each_role_over_sftp(node: NodeProcess, team: Team) -> None:
    assert upload(node, team.owner, team.bucket, "f.txt", b"hello").status_code == 201
    reader, writer = _enable_sftp(team.reader), _enable_sftp(team.writer)
    outsider = _enable_sftp(signup(node))
    rs = paramiko_client(reader)
    try:
        assert sorted(rs.listdir("/")) == sorted([team.reader.bucket, team.bucket])
        assert rs.open(f"/{team.bucket}/f.txt").read() == b"hello"
        with pytest.raises(PermissionError):
            rs.putfo(io.BytesIO(b"nope"), f"/{team.bucket}/r.txt")
        with pytest.raises(PermissionError):
            rs.remove(f"/{team.bucket}/f.txt")
    finally:
        rs.close()
    ws = paramiko_client(writer)
    try:
        assert team.bucket in ws.listdir("/")
        ws.putfo(io.BytesIO(b"from sftp"), f"/{team.bucket}/w.txt")
        ws.rename(f"/{team.bucket}/w.txt", f"/{team.bucket}/w2.txt")
        assert ws.open(f"/{team.bucket}/w2.txt").read() == b"from sftp"
        ws.remove(f"/{team.bucket}/w2.txt")
    finally:
        ws.close()
    os_ = paramiko_client(outsider)
    try:
        assert team.bucket not in os_.listdir("/")
        with pytest.raises(FileNotFoundError):
            os_.open(f"/{team.bucket}/f.txt").read()
    finally:
        os_.close()


def test_member_and_bucket_removal_and_roles(node: NodeProcess, team: Team) -> None:
    fid = upload(node, team.owner, team.bucket, "k.txt", b"k").json()["id"]
    url = f"{node.web_url}/api/v1/files/{fid}"
    # Only admins manage; a writer cannot change roles or remove others.
    r = team.writer.client.patch("/api/teams", json={
        "teamId": team.id, "action": "change_role", "userId": team.reader.account_id,
        "role": "admin"})
    assert r.status_code == 403 and r.json()["error"] == "AccessDenied"
    # Promote the reader to write: uploads work at once.
    r = team.admin.client.patch("/api/teams", json={
        "teamId": team.id, "action": "change_role", "userId": team.reader.account_id,
        "role": "write"})
    assert r.status_code == 200, r.text
    assert upload(node, team.reader, team.bucket, "now.txt", b"w").status_code == 201
    bad = team.admin.client.patch("/api/teams", json={
        "teamId": team.id, "action": "change_role", "userId": team.reader.account_id,
        "role": "owner"})
    assert bad.status_code == 400 and bad.json()["error"] == "InvalidRole"
    # Remove the reader: refused on the next request.
    r = team.admin.client.patch("/api/teams", json={
        "teamId": team.id, "action": "remove_member", "userId": team.reader.account_id})
    assert r.status_code == 200, r.text
    assert httpx.get(url, headers=team.reader.api_headers).status_code == 403
    assert team.reader.client.get("/api/teams").json() == {"teams": []}
    # Unshare the bucket: the writer loses it too, the owner keeps it.
    assert httpx.get(url, headers=team.writer.api_headers).status_code == 200
    r = team.admin.client.patch("/api/teams", json={
        "teamId": team.id, "action": "remove_bucket", "bucketName": team.bucket})
    assert r.status_code == 200, r.text
    assert httpx.get(url, headers=team.writer.api_headers).status_code == 403
    assert httpx.get(url, headers=team.owner.api_headers).status_code == 200
    # A team admin cannot share a bucket that is not theirs.
    r = team.admin.client.patch("/api/teams", json={
        "teamId": team.id, "action": "add_bucket", "bucketName": team.writer.bucket})
    assert r.status_code == 403
    unknown = team.admin.client.patch("/api/teams", json={"teamId": team.id, "action": "x"})
    assert unknown.status_code == 400 and unknown.json()["error"] == "InvalidAction"
    # Deleting the team: admins only; buckets stay with their owners.
    assert team.writer.client.delete(f"/api/teams?id={team.id}").status_code == 403
    assert team.owner.client.delete(f"/api/teams?id={team.id}").json() == {"success": True}
    assert team.writer.client.get("/api/teams").json() == {"teams": []}
    assert httpx.get(url, headers=team.owner.api_headers).status_code == 200


def test_last_admin_cannot_demote_or_remove_themself(node: NodeProcess,
                                                     mailbox: tuple[Mailbox, int]) -> None:
    owner, member = signup(node), signup(node)
    team_id = owner.client.post("/api/teams", json={"name": "Engineering"}).json()["id"]
    invite_and_accept(owner, team_id, member, "write", mailbox[0])
    for body in ({"action": "change_role", "role": "write"}, {"action": "remove_member"}):
        r = owner.client.patch("/api/teams", json={"teamId": team_id,
                                                   "userId": owner.account_id, **body})
        assert r.status_code == 409 and r.json()["error"] == "LastAdmin", r.text
    # With a second admin, the first may step down.
    assert owner.client.patch("/api/teams", json={
        "teamId": team_id, "action": "change_role", "userId": member.account_id,
        "role": "admin"}).status_code == 200
    assert owner.client.patch("/api/teams", json={
        "teamId": team_id, "action": "remove_member",
        "userId": owner.account_id}).status_code == 200
    assert member.client.get("/api/teams").json()["teams"][0]["memberCount"] == 1


def test_invite_single_use_expiry_and_email_binding(node: NodeProcess,
                                                    mailbox: tuple[Mailbox, int]) -> None:
    box = mailbox[0]
    owner, invited, other = signup(node), signup(node), signup(node)
    team_id = owner.client.post("/api/teams", json={"name": "Engineering"}).json()["id"]
    r = owner.client.post("/api/teams/invite",
                          json={"teamId": team_id, "email": invited.email, "role": "read"})
    invite = r.json()
    assert set(invite) == {"inviteId", "email", "role", "expiresAt"}
    listed = owner.client.get(f"/api/teams/invite?teamId={team_id}").json()
    assert listed == {"invites": [invite]}
    # Only admins see or send invites.
    assert invited.client.get(f"/api/teams/invite?teamId={team_id}").status_code == 404
    token = box.token_for(invited.email)
    # Another account's email cannot accept it (and does not use it up).
    wrong = other.client.get(f"/api/teams/accept?token={token}")
    assert wrong.status_code == 403 and wrong.json()["error"] == "InviteEmailMismatch"
    assert invited.client.get(f"/api/teams/accept?token={token}").status_code == 200
    again = invited.client.get(f"/api/teams/accept?token={token}")
    assert again.status_code == 404 and again.json()["error"] == "InviteNotFound"
    assert owner.client.get(f"/api/teams/invite?teamId={team_id}").json() == {"invites": []}
    # An expired invite is refused.
    owner.client.post("/api/teams/invite",
                      json={"teamId": team_id, "email": other.email, "role": "read"})
    late = box.token_for(other.email)
    db = sqlite3.connect(node.settings.metadata.url.removeprefix("sqlite://"))
    try:
        db.execute("UPDATE team_invites SET expires_at = '2000-01-01 00:00:00+00:00' "
                   "WHERE email = ?", (other.email,))
        db.commit()
    finally:
        db.close()
    expired = other.client.get(f"/api/teams/accept?token={late}")
    assert expired.status_code == 400 and expired.json()["error"] == "InviteExpired"
    bogus = other.client.get("/api/teams/accept?token=not-a-token")
    assert bogus.status_code == 404
    bad_role = owner.client.post("/api/teams/invite",
                                 json={"teamId": team_id, "email": "x@example.com",
                                       "role": "owner"})
    assert bad_role.status_code == 400 and bad_role.json()["error"] == "InvalidRole"
    assert httpx.get(f"{node.web_url}/api/teams").status_code == 401


@pytest.mark.postgres
def test_removal_takes_effect_on_another_node(pg_url: str, tmp_path: Path) -> None:
    extra = ("bootstrap_expect = 2\n[storage]\nreplication_factor = 2\nwrite_quorum = 1\n"
             + LIMITS)
    nodes = [prepare_node(tmp_path / nid, pg_url, nid, secret_file=tmp_path / "cluster.secret",
                          extra=extra) for nid in ("node1", "node2")]
    for n in nodes:
        n.start()
    try:
        one, two = nodes
        owner, member = signup(one), signup(one)
        team_id = owner.client.post("/api/teams", json={"name": "Engineering"}).json()["id"]
        r = owner.client.post("/api/teams/invite", json={
            "teamId": team_id, "email": member.email, "role": "read"})
        assert r.status_code == 201, r.text
        # No SMTP configured: the invite is logged for the operator.
        token = re.search(r"accept\?token=(\S+)", one.read_log()).group(1)
        assert member.client.get(f"/api/teams/accept?token={token}").status_code == 200
        owner.client.patch("/api/teams", json={"teamId": team_id, "action": "add_bucket",
                                               "bucketName": owner.bucket})
        fid = upload(one, owner, owner.bucket, "x.txt", b"x").json()["id"]
        on_two = f"{two.web_url}/api/v1/files/{fid}"
        assert httpx.get(on_two, headers=member.api_headers).status_code == 200
        r = owner.client.patch("/api/teams", json={
            "teamId": team_id, "action": "remove_member", "userId": member.account_id})
        assert r.status_code == 200, r.text
        assert httpx.get(on_two, headers=member.api_headers).status_code == 403
    finally:
        for n in nodes:
            n.stop()

