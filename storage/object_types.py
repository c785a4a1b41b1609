"""The values the object service deals in: versions, listings, write conditions.

Shared by the service (:mod:`storage.objects`), its units of work
(:mod:`storage.object_commit`) and listings (:mod:`storage.object_list`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from storage import errors
from storage.models import ObjectVersion

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def utc_micros(at: datetime) -> int:
    """An aware time as microseconds since the epoch: what the write relay
    sends instead of a datetime, whose pickle reduces its timezone through
    a timedelta."""
    return (at - _EPOCH) // _MICROSECOND


def from_utc_micros(micros: int) -> datetime:
    """The UTC time :func:`utc_micros` gave ``micros`` for."""
    return _EPOCH + timedelta(microseconds=micros)

NULL_VERSION = "null"


@dataclass(frozen=True)
class WriteCondition:
    """A conditional write, checked in the transaction that commits it.

    ``if_match``: the key's latest version must have one of these ETags
    (``"*"``: any version); NoSuchKey when there is none.  ``if_none_match``:
    the key must have no latest version (a delete marker counts as none).
    """

    if_match: frozenset[str] | None = None
    if_none_match: bool = False

    def check(self, latest: Mapping[str, Any] | None) -> None:
        """Raise unless the condition holds for ``latest`` (an etag/marker row)."""
        exists = latest is not None and not latest["is_delete_marker"]
        if self.if_match is not None:
            if not exists:
                raise errors.NoSuchKey()
            assert latest is not None
            if "*" not in self.if_match and latest["etag"] not in self.if_match:
                raise errors.PreconditionFailed(condition="If-Match")
        if self.if_none_match and exists:
            raise errors.PreconditionFailed(condition="If-None-Match")


@dataclass(frozen=True)
class ObjectInfo:
    """One object version as the protocols see it."""

    bucket: str
    key: str
    version_id: str
    size: int
    etag: str  # without quotes
    content_type: str
    last_modified: datetime
    user_metadata: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    checksums: Mapping[str, str] = field(default_factory=dict)
    is_delete_marker: bool = False
    is_latest: bool = True
    chunks: tuple[tuple[str, int], ...] = ()
    inline_data: bytes | None = None
    # Sizes of the parts of a multipart upload, in order; () if stored in one piece.
    part_sizes: tuple[int, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    # Time Machine: the row's id (``ver_<id>`` in /api/versions) and the
    # version's number among its key's versions, when known.
    # Not part of the value: a version read back equals the one committed.
    row_id: int | None = field(default=None, compare=False)
    version_number: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ListEntry:
    """A key in a listing."""

    key: str
    size: int
    etag: str
    last_modified: datetime
    content_type: str
    version_id: str


@dataclass(frozen=True)
class ListPage:
    """One page of a listing, in UTF-8 byte order of keys."""

    entries: list[ListEntry]
    common_prefixes: list[str]
    is_truncated: bool
    # The last key or common prefix returned: pass it back as ``marker``.
    next_marker: str | None


@dataclass(frozen=True)
class VersionEntry:
    """One version or delete marker in a version listing."""

    key: str
    version_id: str
    is_latest: bool
    is_delete_marker: bool
    size: int
    etag: str
    last_modified: datetime


@dataclass(frozen=True)
class VersionPage:
    """One page of a version listing: keys in UTF-8 byte order, each key's
    versions newest first."""

    entries: list[VersionEntry]
    common_prefixes: list[str]
    is_truncated: bool
    # Pass both back as key_marker / version_id_marker for the next page;
    # next_version_id_marker is None when the page ended on a common prefix.
    next_key_marker: str | None
    next_version_id_marker: str | None


@dataclass(frozen=True)
class DeleteResult:
    """What a delete did (S3 reports both fields)."""

    version_id: str | None
    delete_marker: bool


@dataclass
class StoredData:
    """Bytes of a new version or part, stored but not yet referenced."""

    size: int
    md5: bytes
    chunks: list[tuple[str, int]]
    inline_data: bytes | None
    # Set when a long upload registered its chunks in pending_chunks: the
    # commit that references them deletes those rows.
    pending_token: str | None = None


def new_version_id() -> str:
    """A unique, roughly time-ordered version id."""
    return f"{time.time_ns() // 1000:014x}{secrets.token_hex(9)}"


def to_info(bucket: str, v: ObjectVersion) -> ObjectInfo:
    return ObjectInfo(
        bucket=bucket, key=v.key, version_id=v.version_id, size=v.size, etag=v.etag,
        content_type=v.content_type, last_modified=v.created_at,
        user_metadata=v.user_metadata or {}, headers=v.headers or {},
        checksums=v.checksums or {}, is_delete_marker=v.is_delete_marker,
        is_latest=bool(v.is_latest), chunks=tuple((c, s) for c, s in v.chunks or ()),
        inline_data=bytes(v.inline_data) if v.inline_data is not None else None,
        part_sizes=tuple(v.part_sizes or ()), tags=v.tags or {},
        row_id=v.id, version_number=v.version_number,
    )
