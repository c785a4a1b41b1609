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

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from storage import errors
from storage.accounts import AccountInfo
from storage.bounded import BoundedMemo
from storage.buckets import BucketInfo
from storage.db import Fetch
from storage.objects import ObjectInfo
from storage.sql import json_column

# One statement, always exactly one row: a single execute costs far less
# than three, and the LEFT JOINs leave NULLs for whatever does not exist.
# The account's and the bucket's columns come packed as one JSON array each
# (NULL when there is none): Python's sqlite3 costs ~1k instructions a
# column (it releases the GIL around each column's type), and the packed
# text is the key of the values built from it (see _KEYS), parsed only on
# a miss.
_ACCOUNT_VALUES = (
    "k.secret_enc, a.id, a.email, a.plan, a.quota_bytes, a.used_bytes, a.object_count, "
    "a.is_admin, a.status, a.created_at"
)
_BUCKET_VALUES = "b.id, b.name, b.account_id, b.region, b.versioning, b.created_at"
# (kept with names for storage/path_lookup.py)
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


def _statements(array: str) -> dict[str, str]:
    """The statements, packing with the dialect's ``array`` (a format string)."""
    account = ("SELECT CASE WHEN a.id IS NOT NULL THEN " + array.format(_ACCOUNT_VALUES)
               + " END AS a_row")
    bucket = (account + ", CASE WHEN b.id IS NOT NULL THEN " + array.format(_BUCKET_VALUES)
              + " END AS b_row")
    return {
        "key": account + _FROM_KEY,
        "bucket": bucket + _FROM_KEY + _JOIN_BUCKET,
        "latest": bucket + _OBJECT_COLUMNS + _FROM_KEY + _JOIN_BUCKET + _JOIN_OBJECT
        + "o.is_latest = ?",
        "version": bucket + _OBJECT_COLUMNS + _FROM_KEY
        # Time Machine history rows (storage/versions.py) are not S3 versions.
        + _JOIN_BUCKET + _JOIN_OBJECT + "o.version_id = ? AND o.history_at IS NULL",
    }


def _numbered(sql: str) -> str:
    parts = sql.split("?")
    return parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], 1))


_DIALECT_SQL = {
    "sqlite": _statements("json_array({})"),
    "postgres": {name: _numbered(sql)
                 for name, sql in _statements("json_build_array({})::text").items()},
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
_KEYS: BoundedMemo[str, KeyRecord] = BoundedMemo(4096)
_BUCKETS: BoundedMemo[str, BucketInfo] = BoundedMemo(4096)
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


def _key_record(packed: str) -> KeyRecord:
    """The key of ``_ACCOUNT_VALUES`` packed as a JSON array."""
    record = _KEYS.get(packed)
    if record is None:
        secret, a_id, email, plan, quota, used, objects, admin, status, created = (
            json.loads(packed))
        record = KeyRecord(
            AccountInfo(
                id=a_id, email=email, plan=plan, quota_bytes=quota, used_bytes=used,
                object_count=objects, is_admin=bool(admin), status=status,
                created_at=_dt(created).astimezone(UTC),
            ),
            secret,
        )
        _KEYS.keep(packed, record)
    return record


def _bucket(packed: str) -> BucketInfo:
    """The bucket of ``_BUCKET_VALUES`` packed as a JSON array."""
    info = _BUCKETS.get(packed)
    if info is None:
        b_id, name, account, region, versioning, created = json.loads(packed)
        info = BucketInfo(id=b_id, name=name, account_id=account, region=region,
                          versioning=versioning, created_at=_dt(created).astimezone(UTC))
        _BUCKETS.keep(packed, info)
    return info


# Where each part of a row starts (its columns are read by position: a dict
# of the 41 columns and a lookup by name per field cost ~20 % of a load).
_A, _B, _O = 0, 1, 2


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
    record = _key_record(r[_A]) if r[_A] is not None else None
    if not bucket:
        return _loaded(record, None, False, None)
    if r[_B] is None:
        return _loaded(record, None, True, None)
    info = _bucket(r[_B])
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
