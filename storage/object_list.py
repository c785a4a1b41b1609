"""Listings of a bucket's objects and versions (ListObjects, ListObjectVersions).

Time Machine history rows (``history_at`` set) are never listed here: to S3
clients a bucket without versioning holds only its null versions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import Q

from storage import sql
from storage.buckets import BucketInfo
from storage.db import Database
from storage.listing import Cursor, prefix_upper_bound, roll_up, start_cursor
from storage.models import ObjectVersion
from storage.object_types import ListEntry, ListPage, VersionEntry, VersionPage


async def _fetch_listing(
    bucket_id: int, after: str | None, inclusive: bool, upper: str | None, limit: int
) -> list[dict[str, Any]]:
    # Raw SQL: a page is up to 1000 rows, and the query builder plus per-row
    # field conversion cost more than the query itself.
    query = (
        'SELECT "key", size, etag, created_at, content_type, version_id FROM object_versions '
        "WHERE bucket_id = ? AND is_latest = ? AND is_delete_marker = ?"
    )
    params: list[Any] = [bucket_id, True, False]
    if after is not None:
        query += ' AND "key" >= ?' if inclusive else ' AND "key" > ?'
        params.append(after)
    if upper is not None:
        query += ' AND "key" < ?'
        params.append(upper)
    query += ' ORDER BY "key" LIMIT ?'
    params.append(limit)
    rows = await sql.fetch(ObjectVersion._meta.db, query, params)
    for row in rows:
        moment = row["created_at"]
        if isinstance(moment, str):
            moment = datetime.fromisoformat(moment)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        row["created_at"] = moment
    return rows


async def _fetch_versions(
    bucket_id: int,
    after: str | None,
    inclusive: bool,
    after_id: int | None,
    upper: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    # Time Machine history is not an S3 version.
    q = ObjectVersion.filter(bucket_id=bucket_id, history_at__isnull=True)
    if after is not None:
        if after_id is not None:
            # Resume inside a key: its older versions (smaller ids), then later keys.
            q = q.filter(Q(key__gt=after) | Q(key=after, id__lt=after_id))
        else:
            q = q.filter(key__gte=after) if inclusive else q.filter(key__gt=after)
    if upper is not None:
        q = q.filter(key__lt=upper)
    return await q.order_by("key", "-id").limit(limit).values(
        "id", "key", "version_id", "is_latest", "is_delete_marker", "size", "etag", "created_at"
    )


async def _version_row_id(bucket_id: int, key: str, version_id: str) -> int | None:
    row = await ObjectVersion.filter(bucket_id=bucket_id, key=key, version_id=version_id).first()
    return row.id if row is not None else None


async def list_objects(
    db: Database,
    bucket: BucketInfo,
    *,
    prefix: str = "",
    delimiter: str = "",
    marker: str = "",
    max_keys: int = 1000,
) -> ListPage:
    """List latest versions by key, rolling keys up to ``delimiter``.

    ``marker`` is exclusive; when it is a rolled-up common prefix, the
    whole prefix is skipped, so paging with ``next_marker`` never returns
    a prefix twice.
    """
    upper = prefix_upper_bound(prefix) if prefix else None

    async def fetch(cursor: Cursor, limit: int) -> list[dict[str, Any]]:
        return await db.run(
            _fetch_listing, bucket.id, cursor.key, cursor.inclusive, upper, limit
        )

    page = await roll_up(
        fetch, prefix=prefix, delimiter=delimiter,
        cursor=start_cursor(prefix, delimiter, marker), limit=max_keys,
        key_of=lambda row: row["key"],
    )
    entries = [
        ListEntry(
            key=row["key"], size=row["size"], etag=row["etag"],
            last_modified=row["created_at"], content_type=row["content_type"],
            version_id=row["version_id"],
        )
        for row in page.rows
    ]
    return ListPage(entries, page.prefixes, page.truncated,
                    page.last[0] if page.last else None)

async def list_versions(
    db: Database,
    bucket: BucketInfo,
    *,
    prefix: str = "",
    delimiter: str = "",
    key_marker: str = "",
    version_id_marker: str = "",
    max_keys: int = 1000,
) -> VersionPage:
    """List every version and delete marker, by key then newest first.

    Paging follows S3: ``key_marker`` alone skips every version of that key
    (or the whole common prefix it names); with ``version_id_marker`` the
    listing resumes after that version of the key.
    """
    upper = prefix_upper_bound(prefix) if prefix else None
    after_id = None
    if key_marker and version_id_marker:
        after_id = await db.run(
            _version_row_id, bucket.id, key_marker, version_id_marker
        )

    async def fetch(cursor: Cursor, limit: int) -> list[dict[str, Any]]:
        return await db.run(
            _fetch_versions, bucket.id, cursor.key, cursor.inclusive, cursor.sub, upper,
            limit,
        )

    page = await roll_up(
        fetch, prefix=prefix, delimiter=delimiter,
        cursor=start_cursor(prefix, delimiter, key_marker, after_id), limit=max_keys,
        key_of=lambda row: row["key"], sub_of=lambda row: row["id"],
    )
    entries = [
        VersionEntry(
            key=row["key"], version_id=row["version_id"], is_latest=bool(row["is_latest"]),
            is_delete_marker=row["is_delete_marker"], size=row["size"],
            etag=row["etag"], last_modified=row["created_at"],
        )
        for row in page.rows
    ]
    next_key, last_row = page.last if page.last else (None, None)
    return VersionPage(entries, page.prefixes, page.truncated, next_key,
                       last_row["version_id"] if last_row else None)
