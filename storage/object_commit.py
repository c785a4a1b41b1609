"""The object service's write transactions, as units of work of plain steps.

Written as steps (:data:`storage.sql.UnitOfWork`) so one text runs both on
the SQLite group-commit writer and through the ORM on PostgreSQL.  Every
release of chunk references follows :mod:`storage.refs`: exactly the rows
this transaction's own ``DELETE ... RETURNING`` removed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.transactions import in_transaction

from storage import errors, events, pending, refs, sql, versions
from storage.buckets import BucketInfo
from storage.events import Event, EventType
from storage.models import ObjectVersion
from storage.object_types import (
    NULL_VERSION,
    DeleteResult,
    ObjectInfo,
    WriteCondition,
    from_utc_micros,
    new_version_id,
    utc_micros,
)
from storage.sqlite_writer import rows_of, sqlite_form
from storage.write_relay import relayable

DEFAULT_RETENTION = versions.Retention()


def _now() -> datetime:
    return datetime.now(UTC)


# A hook run first inside a commit's transaction (given the connection); it may
# raise to roll the whole commit back.  Its first statement must write, so that
# SQLite takes its write lock up front.
CommitHook = Callable[[Any], Awaitable[None]]


# Columns a commit writes, in the order of _INSERT_VERSION's placeholders.
_VERSION_COLUMNS = (
    "bucket_id", "key", "version_id", "is_latest", "is_delete_marker", "size", "etag",
    "content_type", "user_metadata", "headers", "checksums", "chunks", "inline_data",
    "created_at", "part_sizes", "tags", "upload_id", "version_number",
)
_INSERT_VERSION = (
    "INSERT INTO object_versions (" + ", ".join(f'"{c}"' for c in _VERSION_COLUMNS)
    + ") VALUES (" + ", ".join("?" for _ in _VERSION_COLUMNS) + ")"
)
_DEMOTE = ('UPDATE object_versions SET is_latest = NULL '
           'WHERE bucket_id = ? AND "key" = ? AND is_latest = ? '
           "RETURNING etag, is_delete_marker, size, content_type, version_number")
# Without S3 versioning: demote the latest version and turn the null version
# (mostly the same row) into Time Machine history in one statement.  A 4 KiB
# object's row spans overflow pages, so SQLite rewrites about 4 KiB per
# UPDATE of it: demoting and hiding in two statements cost an overwrite
# ~50 us of CPU more (sqlite3 3.40, bench unit of tests' schema).  SET
# expressions read the row as it was, so only the null version changes id.
_DEMOTE_AND_HIDE = (
    "UPDATE object_versions SET is_latest = NULL, "
    "history_at = CASE WHEN version_id = ? THEN ? ELSE history_at END, "
    "version_id = CASE WHEN version_id = ? THEN ? ELSE version_id END "
    'WHERE bucket_id = ? AND "key" = ? AND (is_latest = ? OR version_id = ?) '
    "RETURNING id, history_at, is_delete_marker, size, chunks, etag, content_type, "
    "version_number"
)
_HIDE_CANDIDATES = (
    "SELECT id, version_id, history_at, is_delete_marker, size, chunks, etag, content_type, "
    'version_number FROM object_versions WHERE bucket_id = ? AND "key" = ? '
    "AND (is_latest = ? OR version_id = ?)"
)
_HIDE_BY_ID = (
    "UPDATE object_versions SET is_latest = NULL, "
    "history_at = CASE WHEN version_id = ? THEN ? ELSE history_at END, "
    "version_id = CASE WHEN version_id = ? THEN ? ELSE version_id END WHERE id IN "
)


@sqlite_form(_DEMOTE_AND_HIDE)
def _demote_and_hide_sqlite(conn: Any, params: Sequence[Any]) -> list[dict[str, Any]]:
    """_DEMOTE_AND_HIDE as a SELECT of the rows and an UPDATE of them by id:
    the writer holds the write lock, so nothing comes between the two."""
    null, now, _, _, bucket_id, key, latest, _ = params
    rows = rows_of(conn.execute(_HIDE_CANDIDATES, (bucket_id, key, latest, null)))
    if not rows:
        return rows
    conn.execute(_HIDE_BY_ID + "(" + ", ".join("?" for _ in rows) + ")",
                 [*params[:4], *(r["id"] for r in rows)])
    for r in rows:
        # RETURNING's values: the statement's new history_at for the null version.
        if r.pop("version_id") == null:
            r["history_at"] = now
    return rows


# The key's history, newest first, each row with the account's own retention
# (NULLs for none): the policy costs no statement of its own.  No history
# row means nothing to prune, whatever the policy.
_HISTORY_WITH_POLICY = (
    "SELECT v.id, v.history_at, p.max_versions, p.max_age_days FROM object_versions v "
    "LEFT JOIN version_policies p ON p.account_id = ? "
    'WHERE v.bucket_id = ? AND v."key" = ? AND v.history_at IS NOT NULL ORDER BY v.id DESC'
)


def _json(value: Any, empty: str) -> str:
    # Most of a small object's JSON columns are empty: no encoder for those.
    return json.dumps(value) if value else empty


def _row(bucket: BucketInfo, key: str, version_id: str, fields: dict[str, Any],
         chunks: Sequence[tuple[str, int]], created_at: datetime) -> dict[str, Any]:
    """The column values of a new version row (version_number filled in later)."""
    return {
        "bucket_id": bucket.id, "key": key, "version_id": version_id, "is_latest": True,
        "is_delete_marker": bool(fields.get("is_delete_marker")), "size": fields["size"],
        "etag": fields["etag"], "content_type": fields["content_type"],
        "user_metadata": _json(fields.get("user_metadata"), "{}"),
        "headers": _json(fields.get("headers"), "{}"),
        "checksums": _json(fields.get("checksums"), "{}"),
        "chunks": _json([list(c) for c in chunks], "[]"),
        "inline_data": fields.get("inline_data"), "created_at": created_at,
        "part_sizes": _json(list(fields.get("part_sizes") or ()), "[]"),
        "tags": _json(fields.get("tags"), "{}"), "upload_id": fields.get("upload_id"),
        "version_number": 1,
    }


def _commit_key(bucket: BucketInfo, key: str, *_args: Any, **_kwargs: Any) -> tuple[int, str]:
    return bucket.id, key


# What a commit made, beside what its caller gave: (version id, creation
# time in microseconds since the epoch, row id, version number).  A
# secondary process's commit comes back over the write relay
# (storage/write_relay.py) as this, not as the ObjectInfo with the object's
# inline data, which the primary would pickle and the secondary unpickle for
# every small PUT; the time as an int, not an aware datetime (whose pickle
# reduces its timezone through a timedelta).
Committed = tuple[str, int, int, int]


def object_info(bucket: BucketInfo, key: str, fields: dict[str, Any],
                chunks: Sequence[tuple[str, int]], committed: Committed) -> ObjectInfo:
    """The ObjectInfo of the version :func:`commit_row_steps` made."""
    version_id, created_us, row_id, version_number = committed
    created_at = from_utc_micros(created_us)
    return ObjectInfo(
        bucket=bucket.name, key=key, version_id=version_id, size=fields["size"],
        etag=fields["etag"], content_type=fields["content_type"], last_modified=created_at,
        user_metadata=dict(fields.get("user_metadata") or {}),
        headers=dict(fields.get("headers") or {}), checksums=dict(fields.get("checksums") or {}),
        is_delete_marker=bool(fields.get("is_delete_marker")), is_latest=True,
        chunks=tuple(chunks), inline_data=fields.get("inline_data"),
        part_sizes=tuple(fields.get("part_sizes") or ()), tags=dict(fields.get("tags") or {}),
        row_id=row_id, version_number=version_number,
    )


@relayable
@sql.disjoint_by(_commit_key)
def commit_row_steps(
    bucket: BucketInfo,
    key: str,
    fields: dict[str, Any],
    chunks: Sequence[tuple[str, int]],
    condition: WriteCondition | None = None,
    emitted: list[Event] | None = None,
    origin: str = "",
    retention: versions.Retention = DEFAULT_RETENTION,
) -> sql.UnitOfWork[Committed]:
    """Make a new version (or delete marker) the latest one, if ``condition`` holds.

    Records the change's events (object.created / updated / deleted, and
    quota.warning when usage rose through its threshold) in the same
    transaction and appends them to ``emitted``.  Without S3 versioning the
    replaced null version is kept as Time Machine history (:mod:`storage.versions`)
    and the key's history trimmed to the account's ``retention``.

    Raw SQL rather than the ORM: this is every PutObject's transaction, and
    the query builder and model instances cost several times the statements.
    """
    versioned = bucket.versioning == "Enabled"
    version_id = new_version_id() if versioned else NULL_VERSION
    created_at = _now()
    row = _row(bucket, key, version_id, fields, chunks, created_at)
    # The first statement writes, so SQLite takes its write lock up front
    # instead of failing to upgrade a read snapshot later.  Its row lock is
    # also what makes a condition atomic: the version it was checked against
    # stays latest until this commits (a racing first writer of the key
    # loses on the unique latest index and retries against the winner).
    # What it demotes tells the condition, and the event (created or updated).
    hidden: list[dict[str, Any]] = []
    if versioned:
        demoted = yield (sql.FETCH, _DEMOTE, (bucket.id, key, True))
        latest = demoted[0] if demoted else None
    else:
        latest, hidden = yield from _demote_and_hide_steps(bucket, key, created_at)
    if condition is not None:
        condition.check(latest)
    if latest is not None:
        row["version_number"] = int(latest["version_number"] or 1) + 1
    yield from refs.reference_steps(chunks)
    row_id = yield (sql.INSERT, _INSERT_VERSION, [row[c] for c in _VERSION_COLUMNS])
    if fields.get("pending_token"):
        # Only an upload that outlasted a quarter of the GC grace has rows.
        yield from pending.release_steps(fields["pending_token"])
    if any(not r["is_delete_marker"] for r in hidden):
        yield from _prune_steps(bucket, key, retention, created_at)
    changes = yield from _record_and_charge(bucket, key, fields, latest, origin)
    if emitted is not None:
        emitted.extend(changes)
    return (version_id, utc_micros(created_at), row_id,
            row["version_number"])


def _demote_and_hide_steps(bucket: BucketInfo, key: str, now: datetime
                           ) -> sql.UnitOfWork[tuple[dict[str, Any] | None,
                                                     list[dict[str, Any]]]]:
    """Demote ``key``'s latest version and keep its null version as history,
    in one statement.

    Returns the row that was latest (None for a new key) and the rows turned
    into history.  A returned row still without ``history_at`` is a latest
    version with an id of its own; without one, the latest was the null
    version (a key has at most one latest row, and one whenever it has any
    non-history row).  A latest null version committed by another writer
    after this statement's snapshot (PostgreSQL) makes the INSERT fail on the
    unique latest index, and the commit is retried.
    """
    rows = yield (sql.FETCH, _DEMOTE_AND_HIDE,
                  (NULL_VERSION, now, NULL_VERSION, new_version_id(), bucket.id, key, True,
                   NULL_VERSION))
    hidden = [r for r in rows if r["history_at"] is not None]
    latest = next((r for r in rows if r["history_at"] is None), hidden[0] if hidden else None)
    markers = [r["id"] for r in hidden if r["is_delete_marker"]]
    if markers:
        # A delete marker is not history: it goes, released.
        yield from versions.drop_history_steps(bucket.account_id, markers)
    return latest, hidden


def _prune_steps(bucket: BucketInfo, key: str, default: versions.Retention, now: datetime
                 ) -> sql.UnitOfWork[int]:
    """Apply the account's retention (``default`` without a policy of its
    own) to the key's history, reading the policy in the same statement as
    the history: every overwrite runs this.  Rows removed."""
    rows = yield (sql.FETCH, _HISTORY_WITH_POLICY, (bucket.account_id, bucket.id, key))
    if not rows:
        return 0
    policy = default
    if rows[0]["max_versions"] is not None:
        policy = versions.Retention(int(rows[0]["max_versions"]), int(rows[0]["max_age_days"]))
    cutoff = now - timedelta(days=policy.max_age_days)
    drop = [r["id"] for i, r in enumerate(rows)
            if i >= policy.history or versions.as_datetime(r["history_at"]) < cutoff]
    yield from versions.drop_history_steps(bucket.account_id, drop)
    return len(drop)


def _record_and_charge(bucket: BucketInfo, key: str, fields: dict[str, Any],
                       latest: Mapping[str, Any] | None, origin: str
                       ) -> sql.UnitOfWork[list[Event]]:
    """Record the commit's events and charge a new version to the quota.

    The charge comes last: the account's row is the one row every commit of
    the account updates, so on PostgreSQL, where several commits run at once
    (:mod:`storage.pg_direct`), each holds its lock only for this statement
    and the COMMIT.  Refused, it rolls the whole unit back, events included.
    """
    existed = latest is not None and not latest["is_delete_marker"]
    if fields.get("is_delete_marker"):
        if not existed:
            return []
        assert latest is not None
        # A delete marker hides the object: to its users it is deleted.
        changes = [deleted_event(bucket, key, latest, origin)]
        yield from events.record_steps(changes)
        return changes
    changes = [Event(
        EventType.OBJECT_UPDATED if existed else EventType.OBJECT_CREATED,
        bucket.account_id,
        events.object_data(bucket.name, key, fields["size"], fields["content_type"]),
        origin=origin)]
    yield from events.record_steps(changes)
    used, quota = yield from versions.charge_steps(bucket.account_id, fields["size"])
    warning = events.quota_crossing(bucket.account_id, used, fields["size"], quota, origin)
    if warning is not None:
        yield from events.record_steps([warning])
        changes.append(warning)
    return changes


def deleted_event(bucket: BucketInfo, key: str, row: Mapping[str, Any], origin: str,
             version_id: str | None = None) -> Event:
    """object.deleted for a removed (or hidden) version described by ``row``."""
    data = events.object_data(bucket.name, key, int(row.get("size") or 0),
                              row.get("content_type") or "")
    if version_id is not None:
        data["versionId"] = version_id
    return Event(EventType.OBJECT_DELETED, bucket.account_id, data, origin=origin)


async def commit_version_after(
    before: CommitHook,
    bucket: BucketInfo,
    key: str,
    fields: dict[str, Any],
    chunks: list[tuple[str, int]],
    condition: WriteCondition | None,
    emitted: list[Event],
    origin: str,
    retention: versions.Retention = DEFAULT_RETENTION,
) -> ObjectInfo:
    """:func:`commit_row_steps` in an ORM transaction that ``before`` opens,
    answering the new version's ObjectInfo."""
    async with in_transaction() as conn:
        await before(conn)
        committed = await sql.drive(conn, commit_row_steps(bucket, key, fields, chunks,
                                                           condition, emitted, origin, retention))
    return object_info(bucket, key, fields, chunks, committed)


async def find_version(bucket: BucketInfo, key: str, version_id: str | None) -> ObjectVersion:
    """The latest version (NoSuchKey, also for a delete marker) or the one
    with ``version_id`` (NoSuchVersion): never Time Machine history, which S3
    does not see."""
    if version_id is None:
        v = await ObjectVersion.get_or_none(bucket_id=bucket.id, key=key, is_latest=True)
        if v is None:
            raise errors.NoSuchKey()
        if v.is_delete_marker:
            raise errors.NoSuchKey(delete_marker=True, version_id=v.version_id)
        return v
    v = await ObjectVersion.get_or_none(bucket_id=bucket.id, key=key, version_id=version_id,
                                        history_at__isnull=True)
    if v is None:
        raise errors.NoSuchVersion(version_id=version_id)
    return v


async def find_row(bucket: BucketInfo, key: str, row_id: int) -> ObjectVersion:
    """Any version of the key by row id, history included (Time Machine);
    NoSuchVersion for none or a delete marker."""
    v = await ObjectVersion.get_or_none(id=row_id, bucket_id=bucket.id, key=key,
                                        is_delete_marker=False)
    if v is None:
        raise errors.NoSuchVersion("The specified version does not exist.")
    return v


async def set_tags_steps(
    bucket: BucketInfo, key: str, version_id: str, tags: dict[str, str]
) -> None:
    changed = await ObjectVersion.filter(
        bucket_id=bucket.id, key=key, version_id=version_id, is_delete_marker=False,
        history_at__isnull=True,
    ).update(tags=tags)
    if not changed:
        raise errors.NoSuchVersion(version_id=version_id)


@relayable
def delete_version_steps(
    bucket: BucketInfo, key: str, version_id: str, condition: WriteCondition | None,
    emitted: list[Event], origin: str,
) -> sql.UnitOfWork[DeleteResult]:
    """Delete one version for good; the newest remaining one becomes latest.

    Only what this statement deleted is released: of racing deletes of one
    version, exactly one gets the row back (the others find nothing).
    ``condition`` is checked against the version deleted (rolling it back).
    """
    gone = yield (sql.FETCH,
                  'DELETE FROM object_versions WHERE bucket_id = ? AND "key" = ? '
                  "AND version_id = ? AND history_at IS NULL "
                  "RETURNING is_latest, etag, content_type, "
                  f"{refs.VERSION_RETURNING}",
                  (bucket.id, key, version_id))
    if condition is not None:
        condition.check(gone[0] if gone else None)
    if not gone:
        # S3 answers success for a version that is already gone.
        return DeleteResult(version_id=version_id, delete_marker=False)
    yield from refs.release_steps(bucket.account_id, refs.dropped(gone))
    if not gone[0]["is_delete_marker"]:
        changes = [deleted_event(bucket, key, gone[0], origin, version_id)]
        yield from events.record_steps(changes)
        emitted.extend(changes)
    if gone[0]["is_latest"]:
        yield (sql.EXECUTE,
               "UPDATE object_versions SET is_latest = ? WHERE id = (SELECT id FROM "
               'object_versions WHERE bucket_id = ? AND "key" = ? AND history_at IS NULL '
               "ORDER BY id DESC LIMIT 1)",
               (True, bucket.id, key))
    return DeleteResult(version_id=version_id, delete_marker=bool(gone[0]["is_delete_marker"]))


@relayable
def delete_unversioned_steps(
    bucket: BucketInfo, key: str, condition: WriteCondition | None, emitted: list[Event],
    origin: str,
) -> sql.UnitOfWork[DeleteResult]:
    """Delete every version of ``key`` (an unversioned bucket holds one S3
    sees, and its Time Machine history: deleting a file deletes its history),
    if ``condition`` holds for its latest version (else roll back)."""
    gone = yield (sql.FETCH,
                  'DELETE FROM object_versions WHERE bucket_id = ? AND "key" = ? '
                  f"RETURNING is_latest, etag, content_type, {refs.VERSION_RETURNING}",
                  (bucket.id, key))
    latest = next((r for r in gone if r["is_latest"]), None)
    if condition is not None:
        condition.check(latest)
    if gone:
        yield from refs.release_steps(bucket.account_id, refs.dropped(gone))
    if latest is not None and not latest["is_delete_marker"]:
        changes = [deleted_event(bucket, key, latest, origin)]
        yield from events.record_steps(changes)
        emitted.extend(changes)
    return DeleteResult(version_id=None, delete_marker=False)
