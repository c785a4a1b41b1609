"""v2-drive users: ``/v2/users/me`` and ``/v2/users`` (the organization).

The organization of a caller is the caller and every account sharing a team
with it (storage/teams.py).  Roles map the team roles onto the document's:
``admin`` -> admin, ``write`` -> member, ``read`` -> viewer (a member's
strongest role in the caller's teams); the caller is the admin of its own
drive.  Accounts have no display name or avatar: ``display_name`` is the
part of the email before ``@`` and ``avatar_url`` is null.
"""

from __future__ import annotations

from typing import Any

from quart import Response, request

from protocols.rest.v2drive import pagination
from protocols.rest.v2drive.api import DriveApi, iso
from protocols.rest.v2drive.auth import Caller
from protocols.rest.v2drive.errors import invalid, json_answer
from storage.accounts import AccountInfo
from storage.drive import fetch_rows

ROLES = {"admin": "admin", "write": "member", "read": "viewer"}
_RANK = {"admin": 0, "member": 1, "viewer": 2}


def describe_user(a: AccountInfo, role: str) -> dict[str, Any]:
    """A user as the document shows one."""
    return {"id": a.id, "email": a.email, "display_name": a.email.split("@", 1)[0],
            "avatar_url": None, "role": role, "storage_used": a.used_bytes,
            "storage_quota": a.quota_bytes, "two_factor_enabled": False,
            "created_at": iso(a.created_at), "last_login": None}


class UsersApi(DriveApi):
    """The ``/v2/users`` endpoints."""

    async def me(self, caller: Caller) -> Response:
        """GET /v2/users/me."""
        account = await self.services.accounts.get(caller.account.id)
        return json_answer(describe_user(account, "admin"))

    async def list_users(self, caller: Caller) -> Response:
        """GET /v2/users?role=: the organization (teams.read)."""
        role = request.args.get("role")
        if role is not None and role not in _RANK:
            raise invalid("role must be admin, member or viewer.")
        pagination.limit_param()
        pagination.offset_param()
        me = caller.account.id

        rows = await fetch_rows(
            self.services.db,
            "SELECT other.account_id AS id, other.role AS role FROM team_members mine "
            "JOIN team_members other ON other.team_id = mine.team_id "
            "WHERE mine.account_id = ? AND other.account_id <> ?", (me, me))
        roles: dict[str, str] = {me: "admin"}
        for row in rows:
            mapped = ROLES.get(row["role"], "viewer")
            if row["id"] not in roles or _RANK[mapped] < _RANK[roles[row["id"]]]:
                roles[row["id"]] = mapped
        users = []
        for account_id in sorted(roles):
            if role is None or roles[account_id] == role:
                account = await self.services.accounts.get(account_id)
                users.append(describe_user(account, roles[account_id]))
        return json_answer(pagination.page(users))
