"""Multipart uploads: open an upload, store parts, complete or abort it.

Part bytes go through :meth:`ObjectService.store_stream` (never inline, since a
completed object's chunk list is the concatenation of its parts' chunk
lists).  Chunk reference counts stay exact:

* a stored part references its chunks (a replaced part releases its old ones);
* completion, in ONE transaction with the new object version, releases every
  part's references while the version takes its own -- so the listed parts'
  chunks move to the version and unlisted parts' chunks are freed;
* abort releases every part's references.

Completion is split in two so the protocol can compute its checksums in
between: :meth:`MultipartService.plan_completion` validates the part list
against what is stored (S3's rules: InvalidPartOrder, InvalidPart,
EntityTooSmall) and :meth:`MultipartService.complete` commits that plan,
refusing it if any planned part was replaced or the upload vanished meanwhile.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import AsyncIterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from storage import errors, pending, refs, sql
from storage.buckets import BucketInfo
from storage.db import Database
from storage.listing import Cursor, prefix_upper_bound, roll_up, start_cursor
from storage.models import MultipartPart, MultipartUpload, ObjectVersion
from storage.objects import (
    ObjectInfo,
    ObjectService,
    StoredData,
    WriteCondition,
    _to_info,
)

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_SIZE = 5 * 1024**3
MAX_PART_NUMBER = 10000


class InvalidPart(errors.StorageError):
    """One or more of the specified parts could not be found or its ETag does not match."""

    code = "InvalidPart"
    kind = errors.Kind.INVALID


class InvalidPartOrder(errors.StorageError):
    """The list of parts was not in ascending order of part number."""

    code = "InvalidPartOrder"
    kind = errors.Kind.INVALID


class EntityTooSmall(errors.StorageError):
    """A part other than the last one is smaller than the minimum part size."""

    code = "EntityTooSmall"
    kind = errors.Kind.INVALID


@dataclass(frozen=True)
class UploadInfo:
    """An open multipart upload."""

    upload_id: str
    bucket_id: int
    key: str
    content_type: str
    user_metadata: Mapping[str, str]
    headers: Mapping[str, str]
    # Lower-case algorithm ("crc32", ...) or "" and "COMPOSITE"/"FULL_OBJECT" or "".
    checksum_algorithm: str
    checksum_type: str
    initiated: datetime
    # Tags the object gets at completion (x-amz-tagging of CreateMultipartUpload).
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PartInfo:
    """One stored part."""

    part_number: int
    size: int
    etag: str  # hex MD5 of the part, without quotes
    checksums: Mapping[str, str]
    last_modified: datetime
    row_id: int = 0
    chunks: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class PartsPage:
    """One page of ListParts."""

    parts: list[PartInfo]
    is_truncated: bool
    next_part_number_marker: int | None


@dataclass(frozen=True)
class UploadsPage:
    """One page of ListMultipartUploads."""

    uploads: list[UploadInfo]
    common_prefixes: list[str]
    is_truncated: bool
    next_key_marker: str | None
    next_upload_id_marker: str | None


@dataclass(frozen=True)
class CompletionPlan:
    """A validated part list, ready to be committed."""

    upload: UploadInfo
    parts: list[PartInfo]
    size: int
    etag: str  # md5 of the parts' binary md5s, "-N"
    chunks: list[tuple[str, int]] = field(default_factory=list)


def _new_upload_id() -> str:
    # Time-ordered, so ordering by id is ordering by initiation (S3 lists
    # uploads of one key oldest first).
    return f"{time.time_ns() // 1000:014x}{secrets.token_hex(16)}"


def _now() -> datetime:
    return datetime.now(UTC)


def _split_checksum(value: str) -> tuple[str, str]:
    alg, _, kind = (value or "").partition(":")
    return alg, kind


def _upload(u: MultipartUpload) -> UploadInfo:
    alg, kind = _split_checksum(u.checksum_algorithm)
    return UploadInfo(
        upload_id=u.upload_id, bucket_id=u.bucket_id,  # type: ignore[attr-defined]
        key=u.key, content_type=u.content_type, user_metadata=u.user_metadata or {},
        headers=u.headers or {}, checksum_algorithm=alg, checksum_type=kind,
        initiated=u.created_at, tags=u.tags or {},
    )


def _part(p: MultipartPart) -> PartInfo:
    return PartInfo(
        part_number=p.part_number, size=p.size, etag=p.etag, checksums=p.checksums or {},
        last_modified=p.created_at, row_id=p.id,
        chunks=tuple((c, s) for c, s in p.chunks or ()),
    )


def multipart_etag(part_md5s: Sequence[bytes]) -> str:
    """S3's multipart ETag: md5 of the concatenated binary part md5s, ``-N``."""
    return f"{hashlib.md5(b''.join(part_md5s)).hexdigest()}-{len(part_md5s)}"


# -- units of work on the asyncio side -----------------------------------------------


async def _completed_version(bucket_id: int, key: str, upload_id: str) -> ObjectVersion | None:
    return await ObjectVersion.filter(bucket_id=bucket_id, key=key, upload_id=upload_id).first()


async def _lock_upload(conn: Any, bucket_id: int, upload_id: str) -> None:
    """Write-touch the upload row: takes SQLite's write lock up front (and the
    row lock on PostgreSQL), and proves the upload still exists."""
    touched = await sql.execute(
        conn,
        "UPDATE multipart_uploads SET upload_id = upload_id WHERE upload_id = ? AND bucket_id = ?",
        (upload_id, bucket_id),
    )
    if touched != 1:
        raise errors.NoSuchUpload()


async def _get_upload(bucket_id: int, upload_id: str) -> UploadInfo:
    u = await MultipartUpload.get_or_none(upload_id=upload_id, bucket_id=bucket_id)
    if u is None:
        raise errors.NoSuchUpload()
    return _upload(u)


async def _create_upload(bucket_id: int, key: str, fields: dict[str, Any]) -> UploadInfo:
    u = await MultipartUpload.create(
        upload_id=_new_upload_id(), bucket_id=bucket_id, key=key, created_at=_now(), **fields
    )
    return _upload(u)


async def _store_part(
    bucket_id: int, upload_id: str, number: int, stored: StoredData, etag: str,
    checksums: dict[str, str],
) -> PartInfo:
    async with in_transaction() as conn:
        await _lock_upload(conn, bucket_id, upload_id)
        await sql.drive(conn, _replace_part_steps(upload_id, number, stored.chunks))
        await sql.drive(conn, pending.release_steps(stored.pending_token))
        p = await MultipartPart.create(
            upload_id=upload_id, part_number=number, size=stored.size, etag=etag,
            checksums=checksums, chunks=[list(c) for c in stored.chunks], created_at=_now(),
        )
        return _part(p)


async def _load_parts(bucket_id: int, upload_id: str) -> tuple[UploadInfo, list[PartInfo]]:
    upload = await _get_upload(bucket_id, upload_id)
    parts = await MultipartPart.filter(upload_id=upload_id).order_by("part_number")
    return upload, [_part(p) for p in parts]


def _replace_part_steps(
    upload_id: str, number: int, chunks: Sequence[Sequence[Any]]
) -> sql.UnitOfWork[None]:
    """Reference a new part's chunks, releasing those of the part it replaces
    (only if this statement deleted it: see :mod:`storage.refs`)."""
    old = yield (sql.FETCH,
                 "DELETE FROM multipart_parts WHERE upload_id = ? AND part_number = ? "
                 "RETURNING chunks", (upload_id, number))
    yield from refs.unreference_steps(sql.json_column(r["chunks"], []) for r in old)
    yield from refs.reference_steps(chunks)


async def _retire_upload(conn: Any, bucket_id: int, upload_id: str) -> dict[int, int]:
    """Release every part's chunks and delete the upload; NoSuchUpload if it is
    gone.  Returns the deleted parts' row ids by part number."""
    uploads, parts = await sql.drive(conn, refs.retire_uploads_steps(bucket_id, upload_id))
    if not uploads:
        raise errors.NoSuchUpload()
    return {p["part_number"]: p["id"] for p in parts}


def _abort_steps(bucket_id: int, upload_id: str) -> sql.UnitOfWork[None]:
    uploads, _parts = yield from refs.retire_uploads_steps(bucket_id, upload_id)
    if not uploads:
        raise errors.NoSuchUpload()


async def _fetch_parts(upload_id: str, marker: int, limit: int) -> list[PartInfo]:
    rows = await (
        MultipartPart.filter(upload_id=upload_id, part_number__gt=marker)
        .order_by("part_number")
        .limit(limit)
    )
    return [_part(p) for p in rows]


async def _fetch_uploads(
    bucket_id: int, after: str | None, inclusive: bool, after_id: str | None,
    upper: str | None, limit: int,
) -> list[UploadInfo]:
    q = MultipartUpload.filter(bucket_id=bucket_id)
    if after is not None:
        if after_id is not None:
            q = q.filter(Q(key__gt=after) | Q(key=after, upload_id__gt=after_id))
        else:
            q = q.filter(key__gte=after) if inclusive else q.filter(key__gt=after)
    if upper is not None:
        q = q.filter(key__lt=upper)
    return [_upload(u) for u in await q.order_by("key", "upload_id").limit(limit)]


# -- the service ------------------------------------------------------------------------


class MultipartService:
    """S3-style multipart uploads over the object service."""

    def __init__(
        self, db: Database, objects: ObjectService, *, min_part_size: int = MIN_PART_SIZE
    ) -> None:
        self._db = db
        self._objects = objects
        self.min_part_size = min_part_size

    async def create(
        self,
        bucket: BucketInfo,
        key: str,
        *,
        content_type: str = "application/octet-stream",
        user_metadata: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        checksum_algorithm: str = "",
        checksum_type: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> UploadInfo:
        """Open an upload; the object's metadata (and tags) are fixed now, as in S3."""
        alg = checksum_algorithm.lower()
        fields = {
            "content_type": content_type, "user_metadata": dict(user_metadata or {}),
            "headers": dict(headers or {}),
            "checksum_algorithm": f"{alg}:{checksum_type.upper()}" if alg else "",
            "tags": dict(tags or {}),
        }
        return await sql.retry(lambda: self._db.run(_create_upload, bucket.id, key, fields))

    async def get_upload(self, bucket: BucketInfo, upload_id: str) -> UploadInfo:
        """The open upload ``upload_id`` of ``bucket``; NoSuchUpload otherwise."""
        return await self._db.run(_get_upload, bucket.id, upload_id)

    async def upload_part(
        self,
        bucket: BucketInfo,
        upload_id: str,
        part_number: int,
        body: AsyncIterable[bytes],
        *,
        content_md5: bytes | None = None,
        expected_size: int | None = None,
        checksums: Mapping[str, str] | None = None,
    ) -> PartInfo:
        """Store (or replace) part ``part_number`` from ``body``.

        ``checksums`` is read after the body is exhausted (a protocol may fill
        it while streaming).  BadDigest / IncompleteBody as for put_object; the
        bytes of a refused part stay unreferenced, for GC.
        """
        if not 1 <= part_number <= MAX_PART_NUMBER:
            raise ValueError(f"part number {part_number} is not within 1..{MAX_PART_NUMBER}")
        # Refuse before reading any bytes when the upload does not exist.
        await self.get_upload(bucket, upload_id)
        stored = await self._objects.store_stream(body, allow_inline=False)
        if expected_size is not None and stored.size != expected_size:
            raise errors.IncompleteBody(
                f"received {stored.size} bytes of the declared {expected_size}"
            )
        if content_md5 is not None and content_md5 != stored.md5:
            raise errors.BadDigest()
        return await sql.retry(lambda: self._db.run(
            _store_part, bucket.id, upload_id, part_number, stored, stored.md5.hex(),
            dict(checksums or {}),
        ))

    async def list_parts(
        self, bucket: BucketInfo, upload_id: str, *, marker: int = 0, max_parts: int = 1000
    ) -> tuple[UploadInfo, PartsPage]:
        """Parts after ``marker`` in part-number order."""
        upload = await self.get_upload(bucket, upload_id)
        rows = await self._db.run(_fetch_parts, upload_id, marker, max(max_parts, 0) + 1)
        truncated = len(rows) > max_parts
        rows = rows[:max_parts]
        nxt = rows[-1].part_number if rows else None
        return upload, PartsPage(rows, truncated, nxt)

    async def plan_completion(
        self, bucket: BucketInfo, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> CompletionPlan:
        """Check ``(part_number, etag)`` pairs against the stored parts."""
        upload, stored = await self._db.run(_load_parts, bucket.id, upload_id)
        by_number = {p.part_number: p for p in stored}
        chosen: list[PartInfo] = []
        previous = 0
        for number, etag in parts:
            if number <= previous:
                raise InvalidPartOrder()
            previous = number
            part = by_number.get(number)
            if part is None or part.etag != etag.strip().strip('"').lower():
                raise InvalidPart(part_number=number)
            chosen.append(part)
        if not chosen:
            raise InvalidPart()
        for part in chosen[:-1]:
            if part.size < self.min_part_size:
                raise EntityTooSmall(
                    proposed_size=part.size, min_size=self.min_part_size,
                    part_number=part.part_number,
                )
        chunks = [c for part in chosen for c in part.chunks]
        return CompletionPlan(
            upload=upload, parts=chosen, size=sum(p.size for p in chosen),
            etag=multipart_etag([bytes.fromhex(p.etag) for p in chosen]), chunks=chunks,
        )

    async def completed(
        self, bucket: BucketInfo, key: str, upload_id: str, parts: Sequence[tuple[int, str]]
    ) -> ObjectInfo | None:
        """The version an earlier completion of ``upload_id`` from these very
        parts made (a client retrying a completion whose answer it lost), or None."""
        try:
            md5s = [bytes.fromhex(etag.strip().strip('"')) for _, etag in parts]
        except ValueError:
            return None
        if not md5s:
            return None
        version = await self._db.run(_completed_version, bucket.id, key, upload_id)
        if version is None or version.etag != multipart_etag(md5s):
            return None
        return _to_info(bucket.name, version)

    async def complete(
        self,
        bucket: BucketInfo,
        plan: CompletionPlan,
        *,
        checksums: Mapping[str, str] | None = None,
        condition: WriteCondition | None = None,
    ) -> ObjectInfo:
        """Commit ``plan``: the new version appears and the upload is gone, atomically.

        QuotaExceeded, or a ``condition`` that does not hold, leaves the upload
        open (the client may free space, or reconsider, and retry).
        """
        upload_id = plan.upload.upload_id
        planned = {p.part_number: p.row_id for p in plan.parts}

        async def retire(conn: Any) -> None:
            current = await _retire_upload(conn, bucket.id, upload_id)
            if any(current.get(n) != rid for n, rid in planned.items()):
                raise InvalidPart("A part was replaced while the upload was being completed.")

        stored = StoredData(size=plan.size, md5=b"", chunks=list(plan.chunks), inline_data=None)
        up = plan.upload
        return await self._objects.commit(
            bucket, up.key, stored, etag=plan.etag, content_type=up.content_type,
            user_metadata=up.user_metadata, headers=up.headers, checksums=checksums,
            before=retire, tags=up.tags, part_sizes=[p.size for p in plan.parts],
            condition=condition, upload_id=upload_id,
        )

    async def abort(self, bucket: BucketInfo, upload_id: str) -> None:
        """Drop an upload and release its parts' chunks; NoSuchUpload if absent."""
        await sql.retry(lambda: self._db.write(_abort_steps, bucket.id, upload_id))

    async def list_uploads(
        self,
        bucket: BucketInfo,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = 1000,
    ) -> UploadsPage:
        """Open uploads by key, then initiation order, rolling keys up to ``delimiter``."""
        upper = prefix_upper_bound(prefix) if prefix else None

        async def fetch(cursor: Cursor, limit: int) -> list[UploadInfo]:
            return await self._db.run(
                _fetch_uploads, bucket.id, cursor.key, cursor.inclusive, cursor.sub, upper, limit
            )

        page = await roll_up(
            fetch, prefix=prefix, delimiter=delimiter,
            cursor=start_cursor(prefix, delimiter, key_marker, upload_id_marker or None),
            limit=max_uploads, key_of=lambda u: u.key, sub_of=lambda u: u.upload_id,
        )
        next_key, last_upload = page.last if page.last else (None, None)
        return UploadsPage(page.rows, page.prefixes, page.truncated, next_key,
                           last_upload.upload_id if last_upload else None)
