"""v2-drive users: ``/v2/users/me``, ``/v2/users`` (the organization) and
``PATCH`` / ``DELETE /v2/users/:id``.

The organization of a caller is the caller and every account sharing a team
with it (storage/teams.py).  Roles map the team roles onto the document's:
``admin`` -> admin, ``write`` -> member, ``read`` -> viewer (a member's
strongest role in the caller's teams); the caller is the admin of its own
drive.  ``display_name`` is v2-drive's own (``drive_profiles``; the email's
local part until set); accounts have no avatar (``avatar_url`` is null).

``PATCH`` sets one's own ``display_name``, or another member's ``role`` in
every team where the caller is an admin (``teams.write``).  ``DELETE``
removes a member from every such team (``teams.write``): accounts own their
data and only an operator deletes an account, so ``transfer_to`` is refused
rather than pretended.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from quart import Response, request

from protocols.rest.v2drive import pagination
from protocols.rest.v2drive.api import DriveApi, iso, string
from protocols.rest.v2drive.auth import Caller
from protocols.rest.v2drive.errors import DriveError, forbidden, invalid, json_answer, not_found
from storage import sql
from storage.accounts import AccountInfo
from storage.drive import fetch_rows
from storage.teams import TeamService

ROLES = {"admin": "admin", "write": "member", "read": "viewer"}
TO_TEAM = {v: k for k, v in ROLES.items()}
_RANK = {"admin": 0, "member": 1, "viewer": 2}


def describe_user(a: AccountInfo, role: str, display_name: str | None = None
                  ) -> dict[str, Any]:
    """A user as the document shows one."""
    return {"id": a.id, "email": a.email,
            "display_name": display_name or a.email.split("@", 1)[0],
            "avatar_url": None, "role": role, "storage_used": a.used_bytes,
            "storage_quota": a.quota_bytes, "two_factor_enabled": False,
            "created_at": iso(a.created_at), "last_login": None}


def _profile_steps(account_id: str, name: str) -> sql.UnitOfWork[None]:
    now = datetime.now(UTC)
    yield (sql.EXECUTE, "INSERT INTO drive_profiles (account_id, display_name, updated_at) "
           "VALUES (?, ?, ?) ON CONFLICT (account_id) DO UPDATE SET display_name = "
           "excluded.display_name, updated_at = excluded.updated_at", (account_id, name, now))


class UsersApi(DriveApi):
    """The ``/v2/users`` endpoints."""

    async def _display_name(self, account_id: str) -> str | None:
        rows = await fetch_rows(self.services.db, "SELECT display_name FROM drive_profiles "
                                "WHERE account_id = ?", (account_id,))
        return rows[0]["display_name"] if rows else None

    async def _user(self, account_id: str, role: str) -> dict[str, Any]:
        account = await self.services.accounts.get(account_id)
        return describe_user(account, role, await self._display_name(account_id))

    async def _org_roles(self, me: str) -> dict[str, str]:
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
        return roles

    async def _admin_teams(self, me: str, other: str) -> list[str]:
        rows = await fetch_rows(
            self.services.db,
            "SELECT mine.team_id AS id FROM team_members mine JOIN team_members other "
            "ON other.team_id = mine.team_id WHERE mine.account_id = ? AND mine.role = ? "
            "AND other.account_id = ?", (me, "admin", other))
        return sorted(r["id"] for r in rows)

    async def me(self, caller: Caller) -> Response:
        """GET /v2/users/me."""
        return json_answer(await self._user(caller.account.id, "admin"))

    async def list_users(self, caller: Caller) -> Response:
        """GET /v2/users?role=: the organization (teams.read)."""
        role = request.args.get("role")
        if role is not None and role not in _RANK:
            raise invalid("role must be admin, member or viewer.")
        pagination.limit_param()
        pagination.offset_param()
        roles = await self._org_roles(caller.account.id)
        chosen = [a for a in sorted(roles) if role is None or roles[a] == role]
        out = pagination.page(chosen)
        out["data"] = [await self._user(a, roles[a]) for a in out["data"]]
        return json_answer(out)

    async def _member(self, caller: Caller, user_id: str) -> str:
        """The role of ``user_id`` in the caller's organization; 404 outside it."""
        roles = await self._org_roles(caller.account.id)
        if user_id not in roles:
            raise not_found(f"The user with ID '{user_id}' was not found.")
        return roles[user_id]

    async def update_user(self, caller: Caller, user_id: str) -> Response:
        """PATCH /v2/users/:id ``{display_name?, role?}``."""
        me = caller.account.id
        user_id = me if user_id == "me" else user_id
        body = await self.body()
        name = string(body, "display_name", max_len=128)
        role = string(body, "role", max_len=16)
        if name is None and role is None:
            raise invalid("Give display_name or role.")
        if role is not None and role not in TO_TEAM:
            raise invalid("role must be admin, member or viewer.")
        await self._member(caller, user_id)
        if name is not None:
            if user_id != me:
                raise forbidden("Only the user may change their display name.")
            if not name.strip():
                raise invalid("display_name must not be empty.")
            await sql.retry(lambda: self.services.db.write(_profile_steps, me, name.strip()))
        if role is not None:
            teams = await self._team_admin_of(caller, user_id)
            for team_id in teams:
                await TeamService(self.services.db).change_role(me, team_id, user_id,
                                                                TO_TEAM[role])
        return json_answer(await self._user(user_id, (await self._org_roles(me))[user_id]))

    async def _team_admin_of(self, caller: Caller, user_id: str) -> list[str]:
        """The teams where the caller may manage ``user_id`` (teams.write, admin)."""
        if "teams.write" not in caller.scopes:
            raise DriveError(403, "insufficient_scope",
                             "This credential is missing the 'teams.write' scope.")
        if user_id == caller.account.id:
            raise forbidden("You cannot change your own role or membership here.")
        teams = await self._admin_teams(caller.account.id, user_id)
        if not teams:
            raise forbidden("You are not an admin of any team of this user.")
        return teams

    async def delete_user(self, caller: Caller, user_id: str) -> Response:
        """DELETE /v2/users/:id: out of every team the caller administers (204)."""
        if request.args.get("transfer_to"):
            raise invalid("Files stay with the account that owns them: transfer_to is not "
                          "supported.")
        await self._member(caller, user_id)
        for team_id in await self._team_admin_of(caller, user_id):
            await TeamService(self.services.db).remove_member(caller.account.id, team_id,
                                                              user_id)
        return json_answer(None, 204)
