"""Chunk reference counts and account usage: the steps that change them.

Every change of ``chunk_refs.refcount`` and ``accounts.used_bytes`` /
``object_count`` goes through these units of work (:mod:`storage.sql`).
Chunks are deduplicated across accounts, so a reference released twice is
*another* tenant's data lost to garbage collection.  The rule every caller
follows: release exactly the rows its own ``DELETE ... RETURNING`` removed,
never rows it merely read (a concurrent transaction may have removed and
released those already).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from storage import errors, sql
from storage.sqlite_writer import sqlite_form

#: What to return from a ``DELETE FROM object_versions`` for :func:`dropped`.
VERSION_RETURNING = "size, is_delete_marker, chunks"


@dataclass(frozen=True)
class Dropped:
    """A version removed by this transaction: what releasing it needs."""

    size: int
    is_delete_marker: bool
    chunks: list[list[Any]]


def dropped(rows: Iterable[Mapping[str, Any]]) -> list[Dropped]:
    """The rows a ``DELETE ... RETURNING`` :data:`VERSION_RETURNING` gave back."""
    return [Dropped(r["size"], bool(r["is_delete_marker"]), sql.json_column(r["chunks"], []))
            for r in rows]


def _now() -> datetime:
    return datetime.now(UTC)


def reference_steps(chunks: Sequence[Sequence[Any]]) -> sql.UnitOfWork[None]:
    """Count one more reference to each chunk (creating its row if new)."""
    if not chunks:
        return
    refs: Counter[str] = Counter(c for c, _ in chunks)
    sizes = {c: s for c, s in chunks}
    now = _now()
    yield (sql.MANY,
           "INSERT INTO chunk_refs (chunk_id, size, refcount, updated_at) VALUES (?, ?, ?, ?) "
           "ON CONFLICT (chunk_id) DO UPDATE SET "
           "refcount = chunk_refs.refcount + excluded.refcount, updated_at = excluded.updated_at",
           [(cid, sizes[cid], n, now) for cid, n in sorted(refs.items())])


def unreference_steps(chunk_lists: Iterable[Sequence[Sequence[Any]]]) -> sql.UnitOfWork[None]:
    """Count one reference less per listing of a chunk in ``chunk_lists``.

    Only for rows this very transaction deleted (see the module docstring).
    """
    refs: Counter[str] = Counter()
    for chunks in chunk_lists:
        refs.update(c for c, _ in chunks or ())
    if refs:
        now = _now()
        # Sorted: concurrent releases lock chunk rows in one order (no deadlock).
        yield (sql.MANY,
               "UPDATE chunk_refs SET refcount = refcount - ?, updated_at = ? WHERE chunk_id = ?",
               [(n, now, cid) for cid, n in sorted(refs.items())])


def release_steps(account_id: str, versions: Sequence[Dropped]) -> sql.UnitOfWork[None]:
    """Drop versions this transaction deleted: their references and their usage."""
    yield from unreference_steps(v.chunks for v in versions)
    live = [v for v in versions if not v.is_delete_marker]
    if live:
        yield (sql.EXECUTE,
               "UPDATE accounts SET used_bytes = used_bytes - ?, object_count = object_count - ? "
               "WHERE id = ?",
               (sum(v.size for v in live), len(live), account_id))


_CHARGE_SET = ("UPDATE accounts SET used_bytes = used_bytes + ?, object_count = object_count + ? "
               "WHERE id = ? AND used_bytes + ? <= quota_bytes")
_CHARGE = _CHARGE_SET + " RETURNING used_bytes, quota_bytes"


@sqlite_form(_CHARGE)
def _charge_sqlite(conn: Any, params: Sequence[Any]) -> list[dict[str, Any]]:
    # Every commit charges: without RETURNING, SQLite's cheaper form.
    if conn.execute(_CHARGE_SET, params).rowcount == 0:
        return []
    row = conn.execute("SELECT used_bytes, quota_bytes FROM accounts WHERE id = ?",
                       (params[2],)).fetchone()
    return [{"used_bytes": row[0], "quota_bytes": row[1]}]


def charge_steps(account_id: str, size: int, count: int) -> sql.UnitOfWork[tuple[int, int]]:
    """Add usage, refusing (and so rolling back) anything over the quota.

    Returns the account's usage after the charge and its quota (for the
    quota.warning event).
    """
    rows = yield (sql.FETCH, _CHARGE, (size, count, account_id, size))
    if not rows:
        raise errors.QuotaExceeded()
    return int(rows[0]["used_bytes"]), int(rows[0]["quota_bytes"])


def retire_uploads_steps(
    bucket_id: int, upload_id: str | None = None
) -> sql.UnitOfWork[tuple[list[str], list[dict[str, Any]]]]:
    """Delete multipart uploads -- ``upload_id``, or every one of the bucket --
    with their parts, releasing the parts' references.

    Returns the uploads removed and their parts (``id``, ``part_number``).
    The uploads' rows are locked first: a concurrent UploadPart (which locks
    its upload before adding a part) either committed before, and its part
    is released here, or finds the upload gone.
    """
    where = "bucket_id = ?" if upload_id is None else "upload_id = ? AND bucket_id = ?"
    params = [bucket_id] if upload_id is None else [upload_id, bucket_id]
    locked = yield (sql.FETCH,
                    f"UPDATE multipart_uploads SET upload_id = upload_id WHERE {where} "
                    "RETURNING upload_id", params)
    if not locked:
        return [], []
    parts = yield (sql.FETCH,
                   "DELETE FROM multipart_parts WHERE upload_id IN "
                   f"(SELECT upload_id FROM multipart_uploads WHERE {where}) "
                   "RETURNING id, part_number, chunks", params)
    yield from unreference_steps(sql.json_column(p["chunks"], []) for p in parts)
    yield (sql.EXECUTE, f"DELETE FROM multipart_uploads WHERE {where}", params)
    return [r["upload_id"] for r in locked], parts


def repair_steps(listed: Mapping[str, tuple[int, int]]) -> sql.UnitOfWork[list[str]]:
    """Set the refcount of chunks the rows still list (``{id: (listings, size)}``)
    where it is 0 or less (or the row is gone); returns the ids repaired.

    A positive refcount is left alone: a commit may have raised it since the
    listings were counted, and GC never deletes a chunk with one anyway.
    """
    repaired: list[str] = []
    now = _now()
    for cid, (n, size) in sorted(listed.items()):
        rows = yield (sql.FETCH,
                      "INSERT INTO chunk_refs (chunk_id, size, refcount, updated_at) "
                      "VALUES (?, ?, ?, ?) ON CONFLICT (chunk_id) DO UPDATE SET "
                      "refcount = excluded.refcount, updated_at = excluded.updated_at "
                      "WHERE chunk_refs.refcount <= 0 RETURNING chunk_id",
                      (cid, size, n, now))
        repaired.extend(r["chunk_id"] for r in rows)
    return repaired
