"""The Teams API of the dashboard (session cookie): teams, members, shared
buckets and invites, with the fields of the product documents.

``GET/POST/PATCH/DELETE /api/teams``, ``POST/GET /api/teams/invite``,
``GET /api/teams/accept?token=``.  What a role allows on the shared buckets
is decided elsewhere, once, by :mod:`storage.authz` with the lookup of
:mod:`storage.teams`.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from quart import Blueprint, request

from protocols.rest.common import (
    ApiError,
    check_request_params,
    iso,
    json_response,
    read_json,
    string_field,
)
from protocols.rest.session import SessionGate, from_dashboard
from storage.accounts import AccountInfo
from storage.core import StorageCore
from storage.mail import Mailer, MailError
from storage.teams import InviteInfo, TeamService

log = logging.getLogger("cloudstorage.teams")




def _invite(i: InviteInfo) -> dict[str, Any]:
    return {"inviteId": i.id, "email": i.email, "role": i.role, "expiresAt": iso(i.expires_at)}


def _required_arg(name: str) -> str:
    value = request.args.get(name, "")
    if not value:
        raise ApiError(400, "MissingParameter", f"Pass the {name} as ?{name}=.")
    return value


def create_teams_blueprint(services: StorageCore, gate: SessionGate) -> Blueprint:
    """The Teams API routes over a node's services."""
    bp = Blueprint("teams", __name__)
    bp.before_request(check_request_params)
    bp.before_request(from_dashboard)
    session_required = gate.required
    teams = TeamService(services.db)
    mailer = Mailer(services.settings.smtp)

    @bp.get("/api/teams")
    @session_required
    async def list_teams(account: AccountInfo) -> Any:
        return json_response({"teams": [
            {"id": t.id, "name": t.name, "role": t.role, "memberCount": t.member_count,
             "bucketCount": t.bucket_count}
            for t in await teams.list_teams(account.id)
        ]})

    @bp.post("/api/teams")
    @session_required
    async def create_team(account: AccountInfo) -> Any:
        body = await read_json()
        team = await teams.create_team(account.id, string_field(body, "name", max_len=128))
        return json_response(
            {"id": team.id, "name": team.name, "createdAt": iso(team.created_at)}, 201)

    @bp.patch("/api/teams")
    @session_required
    async def manage_team(account: AccountInfo) -> Any:
        body = await read_json()
        team_id = string_field(body, "teamId", max_len=40)
        action = string_field(body, "action", max_len=32)
        if action in ("add_bucket", "remove_bucket"):
            bucket = string_field(body, "bucketName", max_len=63)
            change = teams.add_bucket if action == "add_bucket" else teams.remove_bucket
            await change(account.id, team_id, bucket)
        elif action == "remove_member":
            await teams.remove_member(account.id, team_id,
                                      string_field(body, "userId", max_len=40))
        elif action == "change_role":
            await teams.change_role(account.id, team_id, string_field(body, "userId", max_len=40),
                                    string_field(body, "role", max_len=16))
        else:
            raise ApiError(400, "InvalidAction", "action must be one of add_bucket, "
                           "remove_bucket, remove_member, change_role.")
        return json_response({"success": True})

    @bp.delete("/api/teams")
    @session_required
    async def delete_team(account: AccountInfo) -> Any:
        await teams.delete_team(account.id, _required_arg("id"))
        return json_response({"success": True})

    @bp.post("/api/teams/invite")
    @session_required
    async def invite(account: AccountInfo) -> Any:
        body = await read_json()
        email = string_field(body, "email", max_len=320)
        if "@" not in email:
            raise ApiError(400, "InvalidEmail", "The email address is not valid.")
        info, token = await teams.invite(account.id, string_field(body, "teamId", max_len=40),
                                         email, string_field(body, "role", max_len=16))
        await deliver_invite(mailer, info, token, account)
        return json_response(_invite(info), 201)

    @bp.get("/api/teams/invite")
    @session_required
    async def list_invites(account: AccountInfo) -> Any:
        pending = await teams.list_invites(account.id, _required_arg("teamId"))
        return json_response({"invites": [_invite(i) for i in pending]})

    @bp.get("/api/teams/accept")
    @session_required
    async def accept(account: AccountInfo) -> Any:
        token = _required_arg("token")
        if len(token) > 128:
            raise ApiError(404, "InviteNotFound",
                           "The invite token is invalid or has already been used.")
        done = await teams.accept(account.id, account.email, token)
        return json_response({"success": True, "teamId": done.team_id,
                              "teamName": done.team_name, "role": done.role})

    return bp


async def deliver_invite(mailer: Mailer, info: InviteInfo, token: str,
                         inviter: AccountInfo) -> None:
    """Mail the invite link (or log it for the operator when there is no SMTP).

    The invite is committed already: a mail failure is logged, not answered
    as an error, and an admin can invite again.
    """
    link = f"{request.scheme}://{request.host}/api/teams/accept?token={quote(token)}"
    body = (f"{inviter.email} invited you to the team \"{info.team_name}\" as {info.role}.\n\n"
            f"Accept while logged in as {info.email}:\n{link}\n\n"
            f"The invite expires at {iso(info.expires_at)} and works once.\n")
    try:
        await mailer.send(info.email, f"Invitation to the team {info.team_name}", body)
    except MailError as exc:
        log.error("invite %s for %s not delivered: %s", info.id, info.email, exc)
