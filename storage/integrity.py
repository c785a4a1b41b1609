"""The truth behind the caches: chunk references and usage recounted from rows.

``chunk_refs.refcount`` and ``accounts.used_bytes`` / ``object_count`` are
counters maintained by every write.  The truth is what the rows list: every
object version's and every multipart part's ``chunks``, and every version
that is not a delete marker.  This module recounts that truth, to compare
the counters against it (tests, an operator's check) and, for a handful of
chunks, to decide whether garbage collection may delete them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from storage import sql
from storage.db import Database
from storage.models import ChunkRef

_PAGE = 1000
# The tables whose ``chunks`` column (JSON [[id, size], ...]) lists references.
_LISTING_TABLES = ("object_versions", "multipart_parts")


@dataclass
class Recount:
    """References and usage as the rows list them."""

    refcounts: Counter[str] = field(default_factory=Counter)
    # account id -> (bytes, objects) of its versions that are not delete markers
    usage: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class Mismatches:
    """Where the counters disagree with a recount: (id, recorded, recounted)."""

    refcounts: list[tuple[str, int, int]] = field(default_factory=list)
    usage: list[tuple[str, tuple[int, int], tuple[int, int]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.refcounts or self.usage)


def _chunk_ids(value: Any) -> list[str]:
    return [c for c, _ in sql.json_column(value, [])]


async def _listings(conn: Any) -> AsyncIterator[Any]:
    """Every ``chunks`` value of versions and parts, read in pages by id."""
    for table in _LISTING_TABLES:
        after = 0
        while True:
            rows = await sql.fetch(
                conn, f"SELECT id, chunks FROM {table} WHERE id > ? ORDER BY id LIMIT ?",
                (after, _PAGE))
            for row in rows:
                yield row["chunks"]
            if len(rows) < _PAGE:
                break
            after = rows[-1]["id"]


async def _recount() -> Recount:
    conn = ChunkRef._meta.db
    out = Recount()
    async for chunks in _listings(conn):
        out.refcounts.update(_chunk_ids(chunks))
    rows = await sql.fetch(
        conn,
        "SELECT a.id AS account_id, COALESCE(SUM(v.size), 0) AS bytes, COUNT(v.id) AS n "
        "FROM accounts a LEFT JOIN buckets b ON b.account_id = a.id "
        "LEFT JOIN object_versions v ON v.bucket_id = b.id AND v.is_delete_marker = ? "
        "GROUP BY a.id", (False,))
    out.usage = {r["account_id"]: (int(r["bytes"]), int(r["n"])) for r in rows}
    return out


async def recount(db: Database) -> Recount:
    """Recount every chunk's references and every account's usage from the rows.

    Cost: one pass over object_versions and multipart_parts in pages of
    1,000 rows, and one grouped join for usage.  The result is a consistent
    picture only while no writes happen (tests, a quiescent cluster).
    """
    return await db.run(_recount)


async def _recorded() -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    conn = ChunkRef._meta.db
    refs = await sql.fetch(conn, "SELECT chunk_id, refcount FROM chunk_refs")
    accounts = await sql.fetch(conn, "SELECT id, used_bytes, object_count FROM accounts")
    return ({r["chunk_id"]: int(r["refcount"]) for r in refs},
            {r["id"]: (int(r["used_bytes"]), int(r["object_count"])) for r in accounts})


async def mismatches(db: Database) -> Mismatches:
    """Every counter that differs from :func:`recount` (empty when all agree).

    A chunk without a ``chunk_refs`` row counts as recorded 0.
    """
    truth = await recount(db)
    refs, usage = await db.run(_recorded)
    out = Mismatches()
    for cid in sorted(set(refs) | set(truth.refcounts)):
        if refs.get(cid, 0) != truth.refcounts.get(cid, 0):
            out.refcounts.append((cid, refs.get(cid, 0), truth.refcounts.get(cid, 0)))
    for account_id in sorted(usage):
        expected = truth.usage.get(account_id, (0, 0))
        if usage[account_id] != expected:
            out.usage.append((account_id, usage[account_id], expected))
    return out


def _listing_match(dialect: str, n: int) -> str:
    # Chunk ids are 64 lower-case hex digits in quotes: a substring test on
    # the JSON text cannot match anything but the id itself.
    test = "strpos(chunks::text, ?) > 0" if dialect == "postgres" else "instr(chunks, ?) > 0"
    return " OR ".join([test] * n)


def _count_into(found: dict[str, list[int]], value: Any, wanted: set[str]) -> None:
    for cid, size in sql.json_column(value, []):
        if cid in wanted:
            entry = found.setdefault(cid, [0, size])
            entry[0] += 1


async def _listed_by_search(ids: list[str]) -> dict[str, list[int]]:
    conn = ChunkRef._meta.db
    wanted = set(ids)
    found: dict[str, list[int]] = {}
    where = _listing_match(sql.dialect(conn), len(ids))
    needles = [json.dumps(c) for c in ids]
    for table in _LISTING_TABLES:
        for row in await sql.fetch(conn, f"SELECT chunks FROM {table} WHERE {where}", needles):
            _count_into(found, row["chunks"], wanted)
    return found


async def _listed_by_scan(ids: list[str]) -> dict[str, list[int]]:
    wanted = set(ids)
    found: dict[str, list[int]] = {}
    async for chunks in _listings(ChunkRef._meta.db):
        _count_into(found, chunks, wanted)
    return found


#: Up to this many ids are looked up by substring searches in the database;
#: more are checked in one paged pass over every row instead.
SEARCH_MAX = 400
_SEARCH_BATCH = 100


async def listed_references(db: Database, chunk_ids: Iterable[str]) -> dict[str, tuple[int, int]]:
    """``{chunk id: (rows listing it, its size)}`` for those of ``chunk_ids``
    that some object version or multipart part lists (the others are absent).

    Cost, for n ids and R rows in object_versions plus multipart_parts:
    up to :data:`SEARCH_MAX` ids, one scan of both tables per 100 ids, done
    by the database with a substring test per row and id (only matching rows
    come back); beyond that, one paged pass reading all R rows' chunk lists,
    checked against the set of ids in memory -- O(R) whatever n is.
    """
    ids = sorted(set(chunk_ids))
    found: dict[str, list[int]] = {}
    if len(ids) > SEARCH_MAX:
        found = await db.run(_listed_by_scan, ids)
    else:
        for start in range(0, len(ids), _SEARCH_BATCH):
            found.update(await db.run(_listed_by_search, ids[start:start + _SEARCH_BATCH]))
    return {cid: (n, size) for cid, (n, size) in found.items()}
