"""Teams: accounts sharing some of their members' buckets, with a role each.

A bucket owner adds their bucket to a team they administer; every member
then reaches it with their own credentials on every protocol, with the
rights of their role (``admin``, ``write``, ``read`` as :mod:`storage.authz`
defines them).  :meth:`TeamService.role_of` is the lookup the one
authorization function asks; it reads the shared database on every call (no
cache), so removing a member or a bucket takes effect on the next request on
every node.

Invites are single use, expire after :data:`INVITE_TTL`, and can only be
accepted by an account whose email is the invited one; only the SHA-256 of
the token is stored.  The last admin of a team can be neither demoted nor
removed: a team always has someone who can manage it.

Every membership change (a team created with its first admin, an invite
accepted, a member removed or leaving, a team deleted with its members)
records ``team.member_added`` / ``team.member_removed`` events in its own
transaction, one for each admin of the team and one for the member
concerned (storage/events.py), whichever dialect asked for it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from storage import errors, events, sql
from storage.authz import Role
from storage.buckets import BucketInfo
from storage.db import Database, Fetch
from storage.events import EventType
from storage.models import Bucket, Team, TeamBucket, TeamInvite, TeamMember

INVITE_TTL = timedelta(days=7)
MAX_TEAM_NAME = 128

# The roles a team grants, weakest first: a member of several teams that
# share the same bucket gets the strongest.
TEAM_ROLES: tuple[Role, ...] = (Role.READ, Role.WRITE, Role.ADMIN)
_STRENGTH = {role: i for i, role in enumerate(TEAM_ROLES)}


class NoSuchTeam(errors.StorageError):
    """The team does not exist or you are not a member of it."""

    code = "TeamNotFound"
    kind = errors.Kind.NOT_FOUND


class InvalidTeamName(errors.StorageError):
    """The team name must be 1-128 characters."""

    code = "InvalidTeamName"
    kind = errors.Kind.INVALID


class NotTeamAdmin(errors.StorageError):
    """Only an admin of the team may do this."""

    code = "AccessDenied"
    kind = errors.Kind.FORBIDDEN


class NoSuchMember(errors.StorageError):
    """That account is not a member of the team."""

    code = "MemberNotFound"
    kind = errors.Kind.NOT_FOUND


class LastAdmin(errors.StorageError):
    """The last admin of a team cannot be demoted or removed; make someone else admin first."""

    code = "LastAdmin"
    kind = errors.Kind.CONFLICT


class InvalidRole(errors.StorageError):
    """The role must be one of admin, write, read."""

    code = "InvalidRole"
    kind = errors.Kind.INVALID


class InviteNotFound(errors.StorageError):
    """The invite token is invalid or has already been used."""

    code = "InviteNotFound"
    kind = errors.Kind.NOT_FOUND


class InviteExpired(errors.StorageError):
    """The invite has expired; ask a team admin for a new one."""

    code = "InviteExpired"
    kind = errors.Kind.INVALID


class InviteEmailMismatch(errors.StorageError):
    """This invite was sent to another email address."""

    code = "InviteEmailMismatch"
    kind = errors.Kind.FORBIDDEN


class AlreadyMember(errors.StorageError):
    """You are already a member of this team."""

    code = "AlreadyMember"
    kind = errors.Kind.CONFLICT


class BucketNotInTeam(errors.StorageError):
    """The bucket is not shared with this team."""

    code = "NoSuchBucket"
    kind = errors.Kind.NOT_FOUND


@dataclass(frozen=True)
class TeamSummary:
    """A team as one of its members sees it in a listing."""

    id: str
    name: str
    role: str
    member_count: int
    bucket_count: int


@dataclass(frozen=True)
class TeamInfo:
    """A team's identity."""

    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class InviteInfo:
    """A pending invite (the token itself is only known when it is created)."""

    id: str
    team_id: str
    team_name: str
    email: str
    role: str
    expires_at: datetime


@dataclass(frozen=True)
class Accepted:
    """What accepting an invite granted."""

    team_id: str
    team_name: str
    role: str


def parse_role(value: str) -> Role:
    """The team role called ``value``; InvalidRole otherwise (owner is not a team role)."""
    for role in TEAM_ROLES:
        if role.value == value:
            return role
    raise InvalidRole()


def hash_token(token: str) -> str:
    """The stored form of an invite token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _strongest(values: list[str]) -> Role | None:
    roles = [parse_role(v) for v in values if v in {r.value for r in TEAM_ROLES}]
    return max(roles, key=_STRENGTH.__getitem__) if roles else None


def _bucket_info(b: Bucket) -> BucketInfo:
    return BucketInfo(
        id=b.id, name=b.name, account_id=b.account_id,  # type: ignore[attr-defined]
        region=b.region, versioning=b.versioning, created_at=b.created_at,
    )


# Raw SQL through Database.read: on SQLite it runs right on the trio thread
# (every request of a member to a team bucket asks it).
_ROLE_SQL = {
    "sqlite": ("SELECT m.role FROM team_members m "
               "JOIN team_buckets tb ON tb.team_id = m.team_id "
               "WHERE m.account_id = ? AND tb.bucket_id = ?"),
    "postgres": ("SELECT m.role FROM team_members m "
                 "JOIN team_buckets tb ON tb.team_id = m.team_id "
                 "WHERE m.account_id = $1 AND tb.bucket_id = $2"),
}


async def _roles_read(fetch: Fetch, dialect: str, /,
                      account_id: str, bucket_id: int) -> list[str]:
    return [r["role"] for r in await fetch(_ROLE_SQL[dialect], [account_id, bucket_id])]


async def buckets_reachable(db: Database, account_id: str) -> list[BucketInfo]:
    """The buckets ``account_id`` owns plus those its teams share with it, by
    name (bucket names are global, so a team bucket keeps its own name)."""

    async def q() -> list[BucketInfo]:
        team_ids = await TeamMember.filter(account_id=account_id).values_list(
            "team_id", flat=True)
        shared_ids: list[Any] = []
        if team_ids:
            shared_ids = await TeamBucket.filter(team_id__in=list(team_ids)).values_list(
                "bucket_id", flat=True)
        owned = await Bucket.filter(account_id=account_id)
        shared = await Bucket.filter(id__in=list(shared_ids)) if shared_ids else []
        by_name = {b.name: _bucket_info(b) for b in [*owned, *shared]}
        return [by_name[n] for n in sorted(by_name)]

    return await db.run(q)


class TeamService:
    """Teams, members, shared buckets and invites over the metadata database."""

    def __init__(self, db: Database, *, invite_ttl: timedelta = INVITE_TTL) -> None:
        self._db = db
        self._invite_ttl = invite_ttl

    # -- the authorization lookup ------------------------------------------------------

    async def role_of(self, account_id: str, bucket: BucketInfo) -> Role | None:
        """``account_id``'s team role on ``bucket`` (the strongest if several
        teams share it; None if none).  Read from the database every time."""

        return _strongest(await self._db.read(_roles_read, account_id, bucket.id))

    # -- teams ---------------------------------------------------------------------------

    async def list_teams(self, account_id: str) -> list[TeamSummary]:
        """The teams ``account_id`` belongs to, with its role and the counts."""

        async def q() -> list[TeamSummary]:
            out = []
            mine = await TeamMember.filter(account_id=account_id).select_related("team")
            for m in sorted(mine, key=lambda m: (m.team.name, m.team.id)):
                out.append(TeamSummary(
                    id=m.team.id, name=m.team.name, role=m.role,
                    member_count=await TeamMember.filter(team_id=m.team.id).count(),
                    bucket_count=await TeamBucket.filter(team_id=m.team.id).count(),
                ))
            return out

        return await self._db.run(q)

    async def create_team(self, account_id: str, name: str) -> TeamInfo:
        """A new team with ``account_id`` as its first admin."""
        name = name.strip()
        if not name or len(name) > MAX_TEAM_NAME:
            raise InvalidTeamName()
        now = datetime.now(UTC)
        team_id = "team_" + secrets.token_hex(8)

        origin = events.current_origin()  # read here: tx() runs on the bridge's thread

        async def tx() -> None:
            async with in_transaction() as conn:
                await Team.create(id=team_id, name=name, created_by=account_id, created_at=now)
                await TeamMember.create(team_id=team_id, account_id=account_id,
                                        role=Role.ADMIN.value, created_at=now)
                await _record_membership(conn, EventType.TEAM_MEMBER_ADDED, team_id,
                                         account_id, Role.ADMIN.value, account_id, origin)

        await sql.retry(lambda: self._db.run(tx))
        return TeamInfo(team_id, name, now)

    async def delete_team(self, account_id: str, team_id: str) -> None:
        """Delete the team (admins only): its buckets stay with their owners;
        each member's removal is recorded."""
        origin = events.current_origin()

        async def tx() -> None:
            async with in_transaction() as conn:
                await _require_admin(team_id, account_id)
                members = await TeamMember.filter(team_id=team_id).order_by("id")
                admins = [m.account_id for m in members  # type: ignore[attr-defined]
                          if m.role == Role.ADMIN.value]
                for m in members:
                    await events.record(conn, events.team_member_events(
                        EventType.TEAM_MEMBER_REMOVED,
                        [*admins, m.account_id],  # type: ignore[attr-defined]
                        team_id, m.account_id, m.role,  # type: ignore[attr-defined]
                        account_id, origin))
                await Team.filter(id=team_id).delete()

        await sql.retry(lambda: self._db.run(tx))

    # -- buckets ---------------------------------------------------------------------------

    async def add_bucket(self, account_id: str, team_id: str, bucket_name: str) -> None:
        """Share ``bucket_name`` with the team: the caller must be a team admin
        and the bucket's owner (nobody shares a bucket that is not theirs)."""

        async def tx() -> None:
            await _require_admin(team_id, account_id)
            bucket = await Bucket.get_or_none(name=bucket_name)
            if bucket is None:
                raise errors.NoSuchBucket()
            if bucket.account_id != account_id:  # type: ignore[attr-defined]
                raise NotTeamAdmin("Only the bucket's owner can add it to a team.")
            if await TeamBucket.exists(team_id=team_id, bucket_id=bucket.id):
                return  # already shared: adding again changes nothing
            try:
                await TeamBucket.create(team_id=team_id, bucket_id=bucket.id,
                                        created_at=datetime.now(UTC))
            except IntegrityError:
                return  # a concurrent add won: the bucket is shared either way

        await sql.retry(lambda: self._db.run(tx))

    async def remove_bucket(self, account_id: str, team_id: str, bucket_name: str) -> None:
        """Stop sharing ``bucket_name`` with the team (a team admin or the
        bucket's owner); members lose access on their next request."""

        async def tx() -> None:
            member = await TeamMember.get_or_none(team_id=team_id, account_id=account_id)
            if member is None:
                raise NoSuchTeam()
            bucket = await Bucket.get_or_none(name=bucket_name)
            if bucket is None:
                raise errors.NoSuchBucket()
            owner = bucket.account_id == account_id  # type: ignore[attr-defined]
            if member.role != Role.ADMIN.value and not owner:
                raise NotTeamAdmin()
            if not await TeamBucket.filter(team_id=team_id, bucket_id=bucket.id).delete():
                raise BucketNotInTeam()

        await sql.retry(lambda: self._db.run(tx))

    # -- members -----------------------------------------------------------------------------

    async def remove_member(self, account_id: str, team_id: str, user_id: str) -> None:
        """Remove ``user_id`` from the team: an admin removes anyone, a member
        may remove themself (leave); never the last admin."""
        origin = events.current_origin()

        async def tx() -> None:
            async with in_transaction() as conn:
                caller = await _member(team_id, account_id)
                if user_id != account_id and caller.role != Role.ADMIN.value:
                    raise NotTeamAdmin()
                target = await TeamMember.get_or_none(team_id=team_id, account_id=user_id)
                if target is None:
                    raise NoSuchMember()
                await _keep_an_admin(team_id, target)
                await TeamMember.filter(id=target.id).delete()
                await _record_membership(conn, EventType.TEAM_MEMBER_REMOVED, team_id,
                                         user_id, target.role, account_id, origin)

        await sql.retry(lambda: self._db.run(tx))

    async def change_role(self, account_id: str, team_id: str, user_id: str,
                          role: str) -> None:
        """Give ``user_id`` the role ``role`` (admins only; the last admin stays admin)."""
        new = parse_role(role)

        async def tx() -> None:
            async with in_transaction():
                await _require_admin(team_id, account_id)
                target = await TeamMember.get_or_none(team_id=team_id, account_id=user_id)
                if target is None:
                    raise NoSuchMember()
                if new is not Role.ADMIN:
                    await _keep_an_admin(team_id, target)
                await TeamMember.filter(id=target.id).update(role=new.value)

        await sql.retry(lambda: self._db.run(tx))

    # -- invites -------------------------------------------------------------------------------

    async def invite(self, account_id: str, team_id: str, email: str,
                     role: str) -> tuple[InviteInfo, str]:
        """A new invite of ``email`` as ``role`` (admins only) and its token,
        which is returned only here."""
        team_role = parse_role(role)
        email = email.strip().lower()
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        invite_id = "inv_" + secrets.token_hex(8)
        expires = now + self._invite_ttl

        async def tx() -> InviteInfo:
            team = await _require_admin(team_id, account_id)
            await TeamInvite.create(
                id=invite_id, team_id=team_id, email=email, role=team_role.value,
                token_hash=hash_token(token), invited_by=account_id, created_at=now,
                expires_at=expires,
            )
            return InviteInfo(invite_id, team_id, team.name, email, team_role.value, expires)

        return await sql.retry(lambda: self._db.run(tx)), token

    async def list_invites(self, account_id: str, team_id: str) -> list[InviteInfo]:
        """The team's invites not yet accepted nor expired (admins only)."""

        async def q() -> list[InviteInfo]:
            team = await _require_admin(team_id, account_id)
            rows = await TeamInvite.filter(
                team_id=team_id, accepted_at__isnull=True, expires_at__gt=datetime.now(UTC),
            ).order_by("created_at")
            return [InviteInfo(i.id, team_id, team.name, i.email, i.role, i.expires_at)
                    for i in rows]

        return await self._db.run(q)

    async def accept(self, account_id: str, email: str, token: str) -> Accepted:
        """Join the team of the invite ``token`` as the account ``account_id``
        whose email is ``email``.  The invite is used up in the same
        transaction that adds the member, so it works once, on any node."""
        digest = hash_token(token)
        origin = events.current_origin()

        async def tx() -> Accepted:
            async with in_transaction() as conn:
                invite = await TeamInvite.get_or_none(token_hash=digest).select_related("team")
                if invite is None or invite.accepted_at is not None:
                    raise InviteNotFound()
                if invite.expires_at <= datetime.now(UTC):
                    raise InviteExpired()
                if invite.email.lower() != email.strip().lower():
                    raise InviteEmailMismatch()
                if await TeamMember.exists(team_id=invite.team.id, account_id=account_id):
                    raise AlreadyMember()
                now = datetime.now(UTC)
                used = await TeamInvite.filter(id=invite.id, accepted_at__isnull=True).update(
                    accepted_at=now, accepted_by=account_id)
                if not used:  # a concurrent acceptance won
                    raise InviteNotFound()
                await TeamMember.create(team_id=invite.team.id, account_id=account_id,
                                        role=invite.role, created_at=now)
                await _record_membership(conn, EventType.TEAM_MEMBER_ADDED, invite.team.id,
                                         account_id, invite.role, account_id, origin)
                return Accepted(invite.team.id, invite.team.name, invite.role)

        return await sql.retry(lambda: self._db.run(tx))


async def _record_membership(conn: Any, etype: EventType, team_id: str, user_id: str,
                             role: str, actor: str, origin: str) -> None:
    """Record a membership change for the team's admins (as they are after
    it) and the member concerned, in the change's transaction ``conn``."""
    admins = await TeamMember.filter(team_id=team_id, role=Role.ADMIN.value).values_list(
        "account_id", flat=True)
    await events.record(conn, events.team_member_events(
        etype, [*(str(a) for a in admins), user_id], team_id, user_id, role, actor, origin))


async def _member(team_id: str, account_id: str) -> TeamMember:
    member = await TeamMember.get_or_none(team_id=team_id, account_id=account_id)
    if member is None:
        # Not a member: the team might as well not exist (no probing of ids).
        raise NoSuchTeam()
    return member


async def _require_admin(team_id: str, account_id: str) -> Team:
    member = await _member(team_id, account_id)
    if member.role != Role.ADMIN.value:
        raise NotTeamAdmin()
    return await Team.get(id=team_id)


async def _keep_an_admin(team_id: str, target: TeamMember) -> None:
    """LastAdmin if ``target`` is the team's only admin (it is about to stop being one)."""
    if target.role != Role.ADMIN.value:
        return
    admins = await TeamMember.filter(team_id=team_id, role=Role.ADMIN.value).count()
    if admins <= 1:
        raise LastAdmin()
