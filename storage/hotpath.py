"""Everything a request needs from the metadata database, in one round trip.

An S3 request needs its access key (secret and account), its bucket and, for
GetObject/HeadObject, the object's row.  Fetched separately, or through the
ORM's query builder, these cost several bridge crossings and most of a
small request's CPU.  :func:`load` fetches them with one fixed raw SQL
statement (:meth:`storage.db.Database.read`: on SQLite without leaving the
trio thread).

Because the key is read from the database on every request, a revoked key,
a suspended account or a deleted bucket take effect at once on every node:
no cache can serve a stale answer.  Only the secret's decryption is cached
(by its sealed value, which changes with the key), and the Python values
built from the account's and the bucket's columns, by those columns' values
(a row that changed in any column is a new key, so a hit is never stale).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from storage import errors
from storage.accounts import AccountInfo
from storage.buckets import BucketInfo
from storage.db import Fetch
from storage.objects import ObjectInfo
from storage.sql import json_column

# One statement, always exactly one row: a single execute costs far less
# than three, and the LEFT JOINs leave NULLs for whatever does not exist.
_ACCOUNT_COLUMNS = (
    "k.secret_enc AS k_secret, a.id AS a_id, a.email AS a_email, a.plan AS a_plan, "
    "a.quota_bytes AS a_quota, a.used_bytes AS a_used, a.object_count AS a_objects, "
    "a.is_admin AS a_admin, a.status AS a_status, a.created_at AS a_created"
)
_BUCKET_COLUMNS = (
    ", b.id AS b_id, b.name AS b_name, b.account_id AS b_account, b.region AS b_region, "
    "b.versioning AS b_versioning, b.created_at AS b_created"
)
_OBJECT_COLUMNS = (
    ', o."key" AS o_key, o.version_id AS o_version, o.size AS o_size, o.etag AS o_etag, '
    "o.content_type AS o_type, o.created_at AS o_created, o.user_metadata AS o_meta, "
    "o.headers AS o_headers, o.checksums AS o_checksums, o.is_delete_marker AS o_marker, "
    "o.is_latest AS o_latest, o.chunks AS o_chunks, o.inline_data AS o_inline, "
    "o.part_sizes AS o_parts, o.tags AS o_tags"
)
_FROM_KEY = (
    " FROM (SELECT 1 AS one) AS one"
    " LEFT JOIN access_keys k ON k.access_key = ?"
    " LEFT JOIN accounts a ON a.id = k.account_id"
)
_JOIN_BUCKET = " LEFT JOIN buckets b ON b.name = ?"
_JOIN_OBJECT = ' LEFT JOIN object_versions o ON o.bucket_id = b.id AND o."key" = ? AND '

_STATEMENTS = {
    "key": "SELECT " + _ACCOUNT_COLUMNS + _FROM_KEY,
    "bucket": "SELECT " + _ACCOUNT_COLUMNS + _BUCKET_COLUMNS + _FROM_KEY + _JOIN_BUCKET,
    "latest": "SELECT " + _ACCOUNT_COLUMNS + _BUCKET_COLUMNS + _OBJECT_COLUMNS + _FROM_KEY
    + _JOIN_BUCKET + _JOIN_OBJECT + "o.is_latest = ?",
    "version": "SELECT " + _ACCOUNT_COLUMNS + _BUCKET_COLUMNS + _OBJECT_COLUMNS + _FROM_KEY
    # Time Machine history rows (storage/versions.py) are not S3 versions.
    + _JOIN_BUCKET + _JOIN_OBJECT + "o.version_id = ? AND o.history_at IS NULL",
}


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


T = TypeVar("T")

# The values built from an account's and a bucket's columns, by those
# columns (content-keyed: see the module docstring).  Building them cost
# ~4 us a request (frozen dataclasses set each field through
# object.__setattr__, and two ISO dates are parsed).
_KEYS: dict[tuple[Any, ...], KeyRecord] = {}
_BUCKETS: dict[tuple[Any, ...], BucketInfo] = {}
# A cache past this many entries is emptied (bounded memory, refilled at once).
_CACHE_ENTRIES = 4096
# SQLite binds a bool through its adapter lookup (~0.4 us); 1 is the same value.
_TRUE = {"sqlite": 1, "postgres": True}


def _frozen(cls: type[T], fields: dict[str, Any]) -> T:
    """``cls(**fields)`` for a frozen dataclass given every field (no
    ``__post_init__``): its ``__init__`` sets each field through
    ``object.__setattr__``, 4.1 us for ObjectInfo's 18 fields against
    0.4 us filling ``__dict__`` at once."""
    made: T = object.__new__(cls)
    made.__dict__.update(fields)
    return made


def _dt(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


_OBJECT_NAMES = ("o_key", "o_version", "o_size", "o_etag", "o_type", "o_created", "o_meta",
                 "o_headers", "o_checksums", "o_marker", "o_latest", "o_chunks", "o_inline",
                 "o_parts", "o_tags")


def _object(bucket: str, r: Mapping[str, Any]) -> ObjectInfo:
    """The object of a row with ``_OBJECT_COLUMNS``' names."""
    return _object_at(bucket, tuple(r[name] for name in _OBJECT_NAMES))


def _object_at(bucket: str, values: Sequence[Any]) -> ObjectInfo:
    """The object of ``_OBJECT_COLUMNS``' values, in their order."""
    (key, version, size, etag, content_type, created, meta, headers, checksums, marker, latest,
     chunks, inline, parts, tags) = values
    return _frozen(ObjectInfo, dict(
        bucket=bucket, key=key, version_id=version, size=size,
        etag=etag, content_type=content_type, last_modified=_dt(created),
        user_metadata=json_column(meta, {}), headers=json_column(headers, {}),
        checksums=json_column(checksums, {}), is_delete_marker=bool(marker),
        is_latest=bool(latest),
        chunks=tuple((c, s) for c, s in json_column(chunks, ())),
        inline_data=bytes(inline) if inline is not None else None,
        part_sizes=tuple(json_column(parts, ())), tags=json_column(tags, {}),
        row_id=None, version_number=None,
    ))


def _loaded(key: KeyRecord | None, bucket: BucketInfo | None, bucket_missing: bool,
            obj: ObjectInfo | errors.StorageError | None) -> Loaded:
    return _frozen(Loaded, {"key": key, "bucket": bucket, "bucket_missing": bucket_missing,
                            "obj": obj})


def _key_record(raw: tuple[Any, ...]) -> KeyRecord:
    """The key of ``_ACCOUNT_COLUMNS``' values, in their order."""
    record = _KEYS.get(raw)
    if record is None:
        secret, a_id, email, plan, quota, used, objects, admin, status, created = raw
        record = KeyRecord(
            AccountInfo(
                id=a_id, email=email, plan=plan, quota_bytes=quota, used_bytes=used,
                object_count=objects, is_admin=bool(admin), status=status,
                created_at=_dt(created),
            ),
            secret,
        )
        if len(_KEYS) >= _CACHE_ENTRIES:
            _KEYS.clear()
        _KEYS[raw] = record
    return record


def _bucket(raw: tuple[Any, ...]) -> BucketInfo:
    """The bucket of ``_BUCKET_COLUMNS``' values, in their order."""
    info = _BUCKETS.get(raw)
    if info is None:
        b_id, name, account, region, versioning, created = raw
        info = BucketInfo(id=b_id, name=name, account_id=account, region=region,
                          versioning=versioning, created_at=_dt(created))
        if len(_BUCKETS) >= _CACHE_ENTRIES:
            _BUCKETS.clear()
        _BUCKETS[raw] = info
    return info


# Where each part of a row starts (its columns are read by position: a dict
# of the 41 columns and a lookup by name per field cost ~20 % of a load).
_A, _B, _O = 0, 10, 16


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
    """The unit of work (run it with :meth:`storage.db.Database.read`).

    ``fetch`` may give its rows as tuples (:meth:`storage.sqlite_reader.
    SqliteReader.fetch_values`: see :attr:`positional`) or as mappings in
    the statement's column order.
    """
    sql = _DIALECT_SQL[dialect]
    want_object = want_object and bool(bucket) and bool(key)
    if not bucket:
        rows = await fetch(sql["key"], [access_key])
    elif not want_object:
        rows = await fetch(sql["bucket"], [access_key, bucket])
    elif version_id is None:
        rows = await fetch(sql["latest"], [access_key, bucket, key, _TRUE[dialect]])
    else:
        rows = await fetch(sql["version"], [access_key, bucket, key, version_id])
    row = rows[0]
    r: tuple[Any, ...] = row if type(row) is tuple else tuple(row.values())
    record = _key_record(r[_A:_B]) if r[_A + 1] is not None else None
    if not bucket:
        return _loaded(record, None, False, None)
    if r[_B] is None:
        return _loaded(record, None, True, None)
    info = _bucket(r[_B:_O])
    obj: ObjectInfo | errors.StorageError | None = None
    if want_object:
        version = r[_O + 1]
        if version is None:
            obj = errors.NoSuchKey() if version_id is None else errors.NoSuchVersion(
                version_id=version_id)
        elif version_id is None and r[_O + 9]:
            obj = errors.NoSuchKey(delete_marker=True, version_id=version)
        else:
            obj = _object_at(info.name, r[_O:])
    return _loaded(record, info, False, obj)


#: :meth:`storage.db.Database.read` may give :func:`load` a fetch whose rows
#: are plain tuples.
load.positional = True  # type: ignore[attr-defined]
