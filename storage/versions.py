"""Time Machine: earlier versions of a file, kept when any protocol overwrites it.

Design.  A bucket whose S3 versioning was never enabled (or is suspended)
holds one *null* version per key, which S3 semantics replace on overwrite.
Instead of deleting the replaced null version, the commit keeps its row as
*history*: ``history_at`` is set (when it was replaced) and it gets a fresh
version id, so the key's null version is again free for the new one.  Every
S3 read, listing and delete path ignores history rows (``history_at IS
NULL``), so to S3 clients the bucket looks exactly as before: no versioning
status, ListObjectVersions shows the null version only, a GET with a history
row's version id is NoSuchVersion.  In a bucket with S3 versioning Enabled
the versions S3 keeps are the Time Machine versions, the same rows.

A history row keeps its chunk references and stays charged to the account
(``used_bytes`` and ``object_count``, like an S3 noncurrent version), so
:mod:`storage.refs` accounting and the integrity recount hold unchanged;
removing one goes through ``DELETE ... RETURNING`` and
:func:`storage.refs.release_steps`, releasing exactly what was removed.

Retention (per account in ``version_policies``, else ``[versions]``): a file
keeps up to ``max_versions`` versions counting the current one, and history
older than ``max_age_days`` (counted from when it was replaced) goes; both
are applied at write time to the key written and by each node's pruning
worker for age.  History counts toward the quota but never blocks a write:
when a write would exceed the quota, the account's oldest history is dropped
to make room first.  Deleting a file (any protocol) deletes its history
too, and deleting a bucket drops the history of its keys.  Versions S3
keeps in a versioning-enabled bucket are the client's own: retention does not
prune them (as S3 keeps every version unless a lifecycle rule says otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from storage import errors, refs, sql
from storage.buckets import BucketInfo
from storage.db import Database

VERSION_PREFIX = "ver_"
MAX_VERSIONS_LIMIT = 1000
MAX_AGE_LIMIT = 3650


@dataclass(frozen=True)
class Retention:
    """How many versions of a file (current included) and for how long."""

    max_versions: int = 10
    max_age_days: int = 30

    @property
    def history(self) -> int:
        """Earlier versions kept beside the current one."""
        return max(self.max_versions - 1, 0)

    def __reduce__(self) -> tuple[Any, tuple[int, int]]:
        # Every relayed write sends one: a constructor call, not the
        # dataclass's default copyreg reconstructor and state dict.
        return Retention, (self.max_versions, self.max_age_days)


def as_datetime(value: Any) -> datetime:
    """A timestamp column as an aware datetime (SQLite hands back text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def public_id(row_id: int) -> str:
    """The ``versionId`` of /api/versions for a version row."""
    return f"{VERSION_PREFIX}{row_id}"


class InvalidPolicy(errors.StorageError):
    """The retention asked for is out of range."""

    code = "InvalidArgument"
    kind = errors.Kind.INVALID


def row_of(version_id: str) -> int:
    """The row id a ``ver_<n>`` id names (NoSuchVersion if it names none)."""
    if not isinstance(version_id, str) or not version_id.startswith(VERSION_PREFIX):
        raise errors.NoSuchVersion("The specified version does not exist.")
    digits = version_id.removeprefix(VERSION_PREFIX)
    if not digits.isascii() or not digits.isdigit() or len(digits) > 18:
        raise errors.NoSuchVersion("The specified version does not exist.")
    return int(digits)


# -- steps run inside the object commit (storage/object_commit.py) ---------------------

def drop_history_steps(account_id: str, ids: Sequence[int]) -> sql.UnitOfWork[int]:
    """Delete these history rows and release what the delete returned; bytes freed."""
    if not ids:
        return 0
    marks = ", ".join("?" for _ in ids)
    gone = yield (sql.FETCH,
                  f"DELETE FROM object_versions WHERE id IN ({marks}) AND history_at IS NOT NULL "
                  f"RETURNING {refs.VERSION_RETURNING}", list(ids))
    if gone:
        yield from refs.release_steps(account_id, refs.dropped(gone))
    return sum(int(r["size"]) for r in gone)


def policy_steps(account_id: str, default: Retention) -> sql.UnitOfWork[Retention]:
    """The account's retention, or ``default``."""
    rows = yield (sql.FETCH, "SELECT max_versions, max_age_days FROM version_policies "
                  "WHERE account_id = ?", (account_id,))
    if not rows:
        return default
    return Retention(int(rows[0]["max_versions"]), int(rows[0]["max_age_days"]))


def make_room_steps(account_id: str, size: int) -> sql.UnitOfWork[bool]:
    """Drop the account's oldest history until ``size`` more bytes fit its
    quota; False (dropping nothing) when even all of it would not do."""
    acct = yield (sql.FETCH, "SELECT used_bytes, quota_bytes FROM accounts WHERE id = ?",
                  (account_id,))
    if not acct:
        return False
    need = int(acct[0]["used_bytes"]) + size - int(acct[0]["quota_bytes"])
    rows = yield (sql.FETCH,
                  "SELECT v.id, v.size FROM object_versions v JOIN buckets b ON b.id = v.bucket_id "
                  "WHERE b.account_id = ? AND v.history_at IS NOT NULL "
                  "ORDER BY v.history_at, v.id LIMIT 1000", (account_id,))
    picked: list[int] = []
    freed = 0
    for r in rows:
        if freed >= need:
            break
        picked.append(r["id"])
        freed += int(r["size"])
    if freed < need:
        return False
    yield from drop_history_steps(account_id, picked)
    return True


def charge_steps(account_id: str, size: int) -> sql.UnitOfWork[tuple[int, int]]:
    """:func:`storage.refs.charge_steps` for one new version, making room
    from history when only history stands in the way."""
    try:
        return (yield from refs.charge_steps(account_id, size, 1))
    except errors.QuotaExceeded:
        # The refused conditional UPDATE changed nothing: the transaction goes on.
        if not (yield from make_room_steps(account_id, size)):
            raise
    return (yield from refs.charge_steps(account_id, size, 1))


# -- the pruning worker's pass ----------------------------------------------------------


def _aged_ids_steps(now: datetime, days: int, account_id: str | None, batch: int
                    ) -> sql.UnitOfWork[list[dict[str, Any]]]:
    """History rows replaced more than ``days`` ago: of one account, or of
    every account without a policy of its own (``account_id`` None)."""
    which = ("b.account_id = ?" if account_id is not None else
             "NOT EXISTS (SELECT 1 FROM version_policies p WHERE p.account_id = b.account_id)")
    params: list[Any] = [now - timedelta(days=days)]
    if account_id is not None:
        params.append(account_id)
    rows = yield (sql.FETCH,
                  "SELECT v.id, b.account_id FROM object_versions v "
                  "JOIN buckets b ON b.id = v.bucket_id WHERE v.history_at IS NOT NULL "
                  f"AND v.history_at < ? AND {which} ORDER BY v.history_at LIMIT ?",
                  [*params, batch])
    return rows


def prune_aged_steps(now: datetime, default: Retention, batch: int) -> sql.UnitOfWork[int]:
    """Remove up to about ``batch`` history rows per retention older than
    their account's max age; rows removed."""
    rows = yield from _aged_ids_steps(now, default.max_age_days, None, batch)
    policies = yield (sql.FETCH, "SELECT account_id, max_age_days FROM version_policies "
                      "ORDER BY account_id", ())
    for p in policies:
        rows += yield from _aged_ids_steps(now, int(p["max_age_days"]), p["account_id"], batch)
    by_account: dict[str, list[int]] = {}
    for r in rows:
        by_account.setdefault(r["account_id"], []).append(r["id"])
    for account_id, ids in sorted(by_account.items()):
        yield from drop_history_steps(account_id, ids)
    return len(rows)


# -- reads for /api/versions -------------------------------------------------------------


@dataclass(frozen=True)
class VersionRow:
    """One version of a file as Time Machine shows it."""

    row_id: int
    number: int
    size: int
    created_at: datetime
    is_current: bool
    content_type: str


async def key_versions(db: Database, bucket: BucketInfo, key: str) -> list[VersionRow]:
    """The file's versions (delete markers aside), newest first."""

    async def q(fetch: Any, dialect: str) -> list[VersionRow]:
        sql_text = ('SELECT id, version_number, size, created_at, is_latest, content_type '
                    'FROM object_versions WHERE bucket_id = ? AND "key" = ? AND '
                    "is_delete_marker = ? ORDER BY id")
        rows = await fetch(_dialect(sql_text, dialect), [bucket.id, key, False])
        out: list[VersionRow] = []
        for position, r in enumerate(rows, 1):
            # Rows from before numbering existed are numbered by position.
            number = r["version_number"] or (out[-1].number + 1 if out else position)
            out.append(VersionRow(r["id"], int(number), int(r["size"]),
                                  as_datetime(r["created_at"]), bool(r["is_latest"]),
                                  r["content_type"] or ""))
        return out[::-1]

    return await db.read(q)


async def files_with_versions(db: Database, bucket: BucketInfo, after: str, limit: int
                              ) -> list[dict[str, Any]]:
    """Keys of the bucket with their version counts, in key order after ``after``."""

    async def q(fetch: Any, dialect: str) -> list[dict[str, Any]]:
        sql_text = ('SELECT "key", COUNT(*) AS versions, MAX(created_at) AS updated, '
                    "MAX(CASE WHEN is_latest = ? THEN size ELSE NULL END) AS size "
                    'FROM object_versions WHERE bucket_id = ? AND "key" > ? AND '
                    'is_delete_marker = ? GROUP BY "key" ORDER BY "key" LIMIT ?')
        return list(await fetch(_dialect(sql_text, dialect), [True, bucket.id, after, False,
                                                              limit]))

    return await db.read(q)


async def locate(db: Database, row_id: int) -> tuple[str, str] | None:
    """``(bucket name, key)`` of a version row that is not a delete marker."""

    async def q(fetch: Any, dialect: str) -> tuple[str, str] | None:
        sql_text = ('SELECT b.name, v."key" FROM object_versions v JOIN buckets b '
                    "ON b.id = v.bucket_id WHERE v.id = ? AND v.is_delete_marker = ?")
        rows = await fetch(_dialect(sql_text, dialect), [row_id, False])
        return (rows[0]["name"], rows[0]["key"]) if rows else None

    return await db.read(q)


def _dialect(text: str, dialect: str) -> str:
    if dialect != "postgres":
        return text
    parts = text.split("?")
    return parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], 1))


# -- per-account retention --------------------------------------------------------------


async def get_policy(db: Database, account_id: str, default: Retention) -> Retention:
    """The retention that applies to the account."""
    return await db.write(policy_steps, account_id, default)


def _set_policy_steps(account_id: str, policy: Retention) -> sql.UnitOfWork[None]:
    yield (sql.EXECUTE,
           "INSERT INTO version_policies (account_id, max_versions, max_age_days, updated_at) "
           "VALUES (?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE SET "
           "max_versions = excluded.max_versions, max_age_days = excluded.max_age_days, "
           "updated_at = excluded.updated_at",
           (account_id, policy.max_versions, policy.max_age_days, datetime.now(UTC)))


async def set_policy(db: Database, account_id: str, policy: Retention) -> None:
    """Give the account its own retention (applied from its next writes and prunes)."""
    if not 1 <= policy.max_versions <= MAX_VERSIONS_LIMIT:
        raise InvalidPolicy(f"maxVersions must be between 1 and {MAX_VERSIONS_LIMIT}.")
    if not 0 <= policy.max_age_days <= MAX_AGE_LIMIT:
        raise InvalidPolicy(f"maxAgeDays must be between 0 and {MAX_AGE_LIMIT}.")
    await sql.retry(lambda: db.write(_set_policy_steps, account_id, policy))
