"""Everything a request needs from the metadata database, in one round trip.

An S3 request needs its access key (secret and account), its bucket and, for
GetObject/HeadObject, the object's row.  Fetched separately, or through the
ORM's query builder, these cost several bridge crossings and most of a
small request's CPU.  :func:`load` fetches them with fixed raw SQL in a
single read (:meth:`storage.db.Database.read`: on SQLite without leaving the
trio thread).

Because the key is read from the database on every request, a revoked key,
a suspended account or a deleted bucket take effect at once on every node:
no cache can serve a stale answer.  Only the secret's decryption is cached
(by its sealed value, which changes with the key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from storage import errors
from storage.accounts import AccountInfo
from storage.buckets import BucketInfo
from storage.db import Fetch
from storage.objects import ObjectInfo
from storage.sql import json_column

_KEY_SQL = (
    'SELECT k.secret_enc, a.id, a.email, a.plan, a.quota_bytes, a.used_bytes, a.object_count, '
    'a.is_admin, a.status, a.created_at FROM access_keys k JOIN accounts a '
    'ON a.id = k.account_id WHERE k.access_key = ?'
)
_BUCKET_SQL = (
    'SELECT id, name, account_id, region, versioning, created_at FROM buckets WHERE name = ?'
)
_OBJECT_COLUMNS = (
    'SELECT "key", version_id, size, etag, content_type, created_at, user_metadata, headers, '
    'checksums, is_delete_marker, is_latest, chunks, inline_data, part_sizes, tags '
    'FROM object_versions '
)
_LATEST_SQL = _OBJECT_COLUMNS + 'WHERE bucket_id = ? AND "key" = ? AND is_latest = ?'
_VERSION_SQL = _OBJECT_COLUMNS + 'WHERE bucket_id = ? AND "key" = ? AND version_id = ?'

_STATEMENTS = {"key": _KEY_SQL, "bucket": _BUCKET_SQL, "latest": _LATEST_SQL,
               "version": _VERSION_SQL}


def _numbered(sql: str) -> str:
    parts = sql.split("?")
    return parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], 1))


_DIALECT_SQL = {
    "sqlite": _STATEMENTS,
    "postgres": {name: _numbered(sql) for name, sql in _STATEMENTS.items()},
}


@dataclass(frozen=True)
class KeyRecord:
    """An access key's account and its still sealed secret."""

    account: AccountInfo
    sealed_secret: str


@dataclass(frozen=True)
class Loaded:
    """What :func:`load` found.

    ``key`` is None for an unknown key.  ``bucket`` is None when no bucket
    was asked for or it does not exist (``bucket_missing`` tells which).
    ``obj`` is the object version, or the storage error a lookup raises
    (NoSuchKey / NoSuchVersion), or None when not asked for.
    """

    key: KeyRecord | None
    bucket: BucketInfo | None
    bucket_missing: bool
    obj: ObjectInfo | errors.StorageError | None


def _dt(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _object(bucket: str, r: dict[str, Any]) -> ObjectInfo:
    inline = r["inline_data"]
    return ObjectInfo(
        bucket=bucket, key=r["key"], version_id=r["version_id"], size=r["size"],
        etag=r["etag"], content_type=r["content_type"], last_modified=_dt(r["created_at"]),
        user_metadata=json_column(r["user_metadata"], {}), headers=json_column(r["headers"], {}),
        checksums=json_column(r["checksums"], {}), is_delete_marker=bool(r["is_delete_marker"]),
        is_latest=bool(r["is_latest"]),
        chunks=tuple((c, s) for c, s in json_column(r["chunks"], ())),
        inline_data=bytes(inline) if inline is not None else None,
        part_sizes=tuple(json_column(r["part_sizes"], ())), tags=json_column(r["tags"], {}),
    )


async def load(
    fetch: Fetch,
    dialect: str,
    access_key: str,
    bucket: str = "",
    key: str = "",
    version_id: str | None = None,
    *,
    want_object: bool = False,
) -> Loaded:
    """The unit of work (run it with :meth:`storage.db.Database.read`)."""
    sql = _DIALECT_SQL[dialect]
    rows = await fetch(sql["key"], [access_key])
    record: KeyRecord | None = None
    if rows:
        r = rows[0]
        record = KeyRecord(
            AccountInfo(
                id=r["id"], email=r["email"], plan=r["plan"], quota_bytes=r["quota_bytes"],
                used_bytes=r["used_bytes"], object_count=r["object_count"],
                is_admin=bool(r["is_admin"]), status=r["status"],
                created_at=_dt(r["created_at"]),
            ),
            r["secret_enc"],
        )
    if not bucket:
        return Loaded(record, None, False, None)
    rows = await fetch(sql["bucket"], [bucket])
    if not rows:
        return Loaded(record, None, True, None)
    r = rows[0]
    info = BucketInfo(id=r["id"], name=r["name"], account_id=r["account_id"],
                      region=r["region"], versioning=r["versioning"],
                      created_at=_dt(r["created_at"]))
    obj: ObjectInfo | errors.StorageError | None = None
    if want_object and key:
        if version_id is None:
            rows = await fetch(sql["latest"], [info.id, key, True])
            if not rows:
                obj = errors.NoSuchKey()
            elif rows[0]["is_delete_marker"]:
                obj = errors.NoSuchKey(delete_marker=True, version_id=rows[0]["version_id"])
            else:
                obj = _object(info.name, rows[0])
        else:
            rows = await fetch(sql["version"], [info.id, key, version_id])
            obj = _object(info.name, rows[0]) if rows else errors.NoSuchVersion(
                version_id=version_id)
    return Loaded(record, info, False, obj)
