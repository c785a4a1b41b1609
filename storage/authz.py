"""Who may do what to a bucket: the one authorization decision of every protocol.

S3, the REST dialects, SFTP, the explorer, share links and image transforms
all ask :meth:`Authorizer.bucket` (or :func:`permits` when they already hold
the bucket) before touching a bucket's contents; none decides alone.

Today a bucket's owner may do everything and nobody else anything.  Team
roles slot in through the ``roles`` lookup (the account's role on a bucket
it does not own, or None): a member reaches a team bucket with their own
credentials, and :data:`ROLE_ACTIONS` is the one table of what each role
allows.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable

from storage import errors
from storage.buckets import BucketInfo, BucketService


class Action(enum.Enum):
    """What a caller wants to do with a bucket."""

    READ = "read"  # list, head, get, download, transform, share
    WRITE = "write"  # upload, overwrite, delete, rename, multipart
    MANAGE = "manage"  # bucket settings (versioning, CORS, tags), delete it, its members


class Role(enum.Enum):
    """A caller's standing on a bucket."""

    OWNER = "owner"
    ADMIN = "admin"
    WRITE = "write"
    READ = "read"


ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.OWNER: frozenset(Action),
    Role.ADMIN: frozenset(Action),
    Role.WRITE: frozenset({Action.READ, Action.WRITE}),
    Role.READ: frozenset({Action.READ}),
}


class AccessDenied(errors.StorageError):
    """Access Denied."""

    code = "AccessDenied"
    kind = errors.Kind.FORBIDDEN

    def __init__(self, message: str = "", *, has_access: bool = False) -> None:
        super().__init__(message)
        # Whether the caller may do anything at all with the bucket: protocols
        # that hide other tenants' buckets (SFTP) answer "no such file" when not.
        self.has_access = has_access


# The caller's role on a bucket they do not own (None: no role).
RoleLookup = Callable[[str, BucketInfo], Awaitable[Role | None]]


async def _no_roles(account_id: str, bucket: BucketInfo) -> Role | None:
    return None


def permits(role: Role | None, action: Action) -> bool:
    """Whether ``role`` allows ``action`` (no role allows nothing)."""
    return role is not None and action in ROLE_ACTIONS[role]


class Authorizer:
    """Decides bucket access for every protocol."""

    def __init__(self, buckets: BucketService, roles: RoleLookup = _no_roles) -> None:
        self._buckets = buckets
        self._roles = roles

    async def role(self, account_id: str, bucket: BucketInfo) -> Role | None:
        """The account's role on ``bucket`` (OWNER for its owner; None: none)."""
        if bucket.account_id == account_id:
            return Role.OWNER
        return await self._roles(account_id, bucket)

    async def check(self, account_id: str, bucket: BucketInfo, action: Action) -> BucketInfo:
        """``bucket`` if ``account_id`` may do ``action`` on it, else AccessDenied.

        The owner costs no lookup, so the hot path of a tenant's own requests
        is unchanged.
        """
        if bucket.account_id == account_id:
            return bucket
        role = await self._roles(account_id, bucket)
        if permits(role, action):
            return bucket
        raise AccessDenied(has_access=role is not None)

    async def bucket(self, account_id: str, name: str, action: Action) -> BucketInfo:
        """The bucket ``name`` if ``account_id`` may do ``action`` on it
        (NoSuchBucket if there is none, AccessDenied if not allowed)."""
        return await self.check(account_id, await self._buckets.get(name), action)
