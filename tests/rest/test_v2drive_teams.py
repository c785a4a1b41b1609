"""v2-drive teams (seed 004) over the teams model, against a live node that
mails invites to a local SMTP sink: members join by accepting them."""

from __future__ import annotations

import httpx

from tests.harness import NodeProcess
from tests.rest.conftest import signup
from tests.rest.test_teams import Mailbox, mailbox, node  # noqa: F401  (fixtures)
from tests.rest.test_v2drive_support import auth, drive_user, error_of, new_key


def test_teams_create_invite_accept_and_roles(node: NodeProcess,  # noqa: F811
                                              mailbox: tuple[Mailbox, int]) -> None:  # noqa: F811
    box = mailbox[0]
    owner, key = drive_user(node)
    member = signup(node)
    member_key = new_key(member)["key"]
    base = f"{node.web_url}/v2"
    r = httpx.post(f"{base}/teams", headers=auth(key), json={
        "name": "Engineering", "description": "Engineering department shared workspace",
        "storage_quota": 536870912000, "member_ids": [member.account_id]})
    assert r.status_code == 201, r.text
    team = r.json()
    assert team["name"] == "Engineering" and team["id"].startswith("team_")
    [invited] = team["invited"]
    assert (invited["user_id"], invited["email"], invited["role"], invited["status"]) == (
        member.account_id, member.email, "editor", "invited")
    token = box.token_for(member.email)
    assert member.client.get(f"/api/teams/accept?token={token}").status_code == 200

    mine = httpx.get(f"{base}/teams", headers=auth(key)).json()
    assert mine["total_count"] == 1
    assert (mine["data"][0]["role"], mine["data"][0]["member_count"]) == ("admin", 2)
    theirs = httpx.get(f"{base}/teams", headers=auth(member_key)).json()
    assert theirs["data"][0]["role"] == "editor"
    users = httpx.get(f"{base}/users", headers=auth(key)).json()
    assert {u["id"]: u["role"] for u in users["data"]} == {owner.account_id: "admin",
                                                           member.account_id: "member"}
    assert [u["id"] for u in httpx.get(f"{base}/users", params={"role": "member"},
                                       headers=auth(key)).json()["data"]] == [member.account_id]

    # More members: by email, with a role; only team admins may invite.
    r = httpx.post(f"{base}/teams/{team['id']}/members", headers=auth(key),
                   json={"members": [{"email": "newcomer@example.com", "role": "viewer"}]})
    assert r.status_code == 201, r.text
    assert r.json()["data"][0]["role"] == "viewer"
    assert box.token_for("newcomer@example.com")
    assert error_of(httpx.post(f"{base}/teams/{team['id']}/members", headers=auth(member_key),
                               json={"member_ids": [owner.account_id]})) == (403, "forbidden")
    assert error_of(httpx.post(f"{base}/teams/team_nope/members", headers=auth(key),
                               json={"member_ids": [member.account_id]})) == (
        404, "resource_not_found")
    assert error_of(httpx.post(f"{base}/teams/{team['id']}/members", headers=auth(key),
                               json={"members": [{"email": "a@b.c", "role": "owner"}]})) == (
        400, "invalid_request")
    assert error_of(httpx.post(f"{base}/teams/{team['id']}/members", headers=auth(key),
                               json={"member_ids": ["user_nobody"]})) == (400, "invalid_request")
    reader = new_key(owner, scopes=["files.read", "teams.read"])["key"]
    assert error_of(httpx.post(f"{base}/teams", headers=auth(reader),
                               json={"name": "X"})) == (403, "insufficient_scope")

    # PATCH and DELETE /v2/users/:id over the same teams.
    r = httpx.patch(f"{base}/users/me", json={"display_name": "Sarah Chen-Williams"},
                    headers=auth(key))
    assert r.status_code == 200, r.text
    assert r.json()["display_name"] == "Sarah Chen-Williams"
    assert httpx.get(f"{base}/users/me", headers=auth(key)).json()["display_name"] == (
        "Sarah Chen-Williams")
    r = httpx.patch(f"{base}/users/{member.account_id}", json={"role": "viewer"},
                    headers=auth(key))
    assert r.status_code == 200 and r.json()["role"] == "viewer", r.text
    assert httpx.get(f"{base}/teams", headers=auth(member_key)).json()["data"][0]["role"] == (
        "viewer")
    assert error_of(httpx.patch(f"{base}/users/{member.account_id}",
                                json={"display_name": "x"}, headers=auth(key))) == (
        403, "forbidden")
    assert error_of(httpx.patch(f"{base}/users/{owner.account_id}", json={"role": "viewer"},
                                headers=auth(member_key))) == (403, "forbidden")
    assert error_of(httpx.patch(f"{base}/users/{member.account_id}", json={"role": "admin"},
                                headers=auth(reader))) == (403, "insufficient_scope")
    assert error_of(httpx.patch(f"{base}/users/user_stranger", json={"role": "admin"},
                                headers=auth(key))) == (404, "resource_not_found")
    assert error_of(httpx.delete(f"{base}/users/{member.account_id}",
                                 params={"transfer_to": owner.account_id},
                                 headers=auth(key))) == (400, "invalid_request")
    assert error_of(httpx.delete(f"{base}/users/{owner.account_id}", headers=auth(key))) == (
        403, "forbidden")
    assert httpx.delete(f"{base}/users/{member.account_id}",
                        headers=auth(key)).status_code == 204
    assert [u["id"] for u in httpx.get(f"{base}/users", headers=auth(key)).json()["data"]] == [
        owner.account_id]
    owner.client.close()
    member.client.close()
