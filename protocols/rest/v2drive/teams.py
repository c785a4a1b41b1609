"""v2-drive teams (seed 004) over the teams model (storage/teams.py).

``GET /v2/teams`` lists the caller's teams (``teams.read``); ``POST
/v2/teams`` creates one with the caller as its admin and invites
``member_ids``; ``POST /v2/teams/:id/members`` invites more (``teams.write``,
team admins only).  Members join a team by accepting an invite (mailed, as
``/api/teams/invite`` does), never by being added silently: the answer
lists the invites made (``status: "invited"``).  Roles map the document's
onto the model's: admin -> admin, editor -> write, viewer -> read.
Teams have no description or quota of their own: ``description`` and
``storage_quota`` answer null (members' quotas are their accounts').
"""

from __future__ import annotations

from typing import Any

from quart import Response

from protocols.rest.teams import deliver_invite
from protocols.rest.v2drive import pagination
from protocols.rest.v2drive.api import DriveApi, iso, string
from protocols.rest.v2drive.auth import Caller
from protocols.rest.v2drive.errors import invalid, json_answer
from storage import errors
from storage.mail import Mailer
from storage.teams import InviteInfo, TeamService

TO_MODEL = {"admin": "admin", "editor": "write", "viewer": "read"}
FROM_MODEL = {v: k for k, v in TO_MODEL.items()}
MAX_INVITES = 50


def _invited(i: InviteInfo, user_id: str | None) -> dict[str, Any]:
    return {"id": i.id, "user_id": user_id, "email": i.email,
            "role": FROM_MODEL.get(i.role, i.role), "status": "invited",
            "expires_at": iso(i.expires_at)}


class TeamsApi(DriveApi):
    """The ``/v2/teams`` endpoints."""

    @property
    def teams(self) -> TeamService:
        """The teams model over this node's database."""
        return TeamService(self.services.db)

    async def list_teams(self, caller: Caller) -> Response:
        """GET /v2/teams."""
        pagination.limit_param()
        pagination.offset_param()
        mine = await self.teams.list_teams(caller.account.id)
        out = pagination.page(mine)
        out["data"] = [{"id": t.id, "name": t.name, "description": None,
                        "role": FROM_MODEL.get(t.role, t.role), "member_count": t.member_count,
                        "storage_quota": None} for t in out["data"]]
        return json_answer(out)

    async def _invite_all(self, caller: Caller, team_id: str,
                          wanted: list[tuple[str | None, str | None, str]]
                          ) -> list[dict[str, Any]]:
        """Invite each (user_id, email, role); 400 for an unknown user."""
        out = []
        mailer = Mailer(self.services.settings.smtp)
        for user_id, email, role in wanted:
            if user_id is not None:
                try:
                    email = (await self.services.accounts.get(user_id)).email
                except errors.StorageError:
                    raise invalid(f"No user has the ID '{user_id}'.") from None
            assert email is not None
            info, token = await self.teams.invite(caller.account.id, team_id, email,
                                                  TO_MODEL[role])
            await deliver_invite(mailer, info, token, caller.account)
            out.append(_invited(info, user_id))
        return out

    async def create_team(self, caller: Caller) -> Response:
        """POST /v2/teams ``{name, description?, storage_quota?, member_ids?}`` (201)."""
        body = await self.body()
        name = string(body, "name", required=True, max_len=128)
        string(body, "description", max_len=1024)
        quota = body.get("storage_quota")
        if quota is not None and (not isinstance(quota, int) or isinstance(quota, bool)
                                  or quota < 0):
            raise invalid("storage_quota must be a non-negative integer.")
        wanted = _members(body, default_role="editor")
        team = await self.teams.create_team(caller.account.id, name or "")
        invited = await self._invite_all(caller, team.id, wanted)
        return json_answer({"id": team.id, "name": team.name, "description": None,
                            "storage_quota": None, "member_count": 1,
                            "created_at": iso(team.created_at), "invited": invited}, 201)

    async def add_members(self, caller: Caller, team_id: str) -> Response:
        """POST /v2/teams/:id/members ``{members: [{user_id|email, role}]}`` or
        ``{member_ids, role}`` (201)."""
        body = await self.body()
        wanted = _members(body, default_role="editor")
        if not wanted:
            raise invalid("Give members (or member_ids) to add.")
        return json_answer({"data": await self._invite_all(caller, team_id, wanted)}, 201)


def _members(body: dict[str, Any], default_role: str) -> list[tuple[str | None, str | None, str]]:
    """(user_id, email, role) of ``member_ids`` / ``members``; 400 when malformed."""
    role = body.get("role", default_role)
    out: list[tuple[str | None, str | None, str]] = []
    ids = body.get("member_ids") or []
    if not isinstance(ids, list) or not all(isinstance(i, str) and 0 < len(i) <= 40
                                            for i in ids):
        raise invalid("member_ids must be a list of user IDs.")
    out += [(i, None, role) for i in ids]
    members = body.get("members") or []
    if not isinstance(members, list):
        raise invalid("members must be a list of {user_id or email, role}.")
    for m in members:
        if not isinstance(m, dict):
            raise invalid("members must be a list of {user_id or email, role}.")
        uid, email = m.get("user_id"), m.get("email")
        if not (isinstance(uid, str) and uid) and not (isinstance(email, str) and "@" in email):
            raise invalid("Each member needs a user_id or an email.")
        out.append((uid if isinstance(uid, str) and uid else None,
                    email if isinstance(email, str) else None, m.get("role", role)))
    if any(r not in TO_MODEL for _, _, r in out):
        raise invalid("role must be admin, editor or viewer.")
    if len(out) > MAX_INVITES:
        raise invalid(f"Invite at most {MAX_INVITES} members at once.")
    return out
