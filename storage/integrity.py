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
from collections.abc import Iterable
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


async def _recount() -> Recount:
    conn = ChunkRef._meta.db
    out = Recount()
    for table in _LISTING_TABLES:
        after = 0
        while True:
            rows = await sql.fetch(
                conn, f"SELECT id, chunks FROM {table} WHERE id > ? ORDER BY id LIMIT ?",
                (after, _PAGE))
            for row in rows:
                out.refcounts.update(_chunk_ids(row["chunks"]))
            if len(rows) < _PAGE:
                break
            after = rows[-1]["id"]
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
    column = "chunks::text" if dialect == "postgres" else "chunks"
    return " OR ".join([f"strpos({column}, ?) > 0" if dialect == "postgres"
                        else f"instr({column}, ?) > 0"] * n)


async def _listed(ids: list[str]) -> Counter[str]:
    conn = ChunkRef._meta.db
    wanted = set(ids)
    found: Counter[str] = Counter()
    where = _listing_match(sql.dialect(conn), len(ids))
    needles = [json.dumps(c) for c in ids]
    for table in _LISTING_TABLES:
        for row in await sql.fetch(conn, f"SELECT chunks FROM {table} WHERE {where}", needles):
            found.update(c for c in _chunk_ids(row["chunks"]) if c in wanted)
    return found


async def listed_references(db: Database, chunk_ids: Iterable[str], *,
                            batch: int = 100) -> Counter[str]:
    """How many version and part rows list each of ``chunk_ids`` (absent: 0).

    Meant for a few ids at a time (garbage-collection candidates): each batch
    of ``batch`` ids costs one scan of object_versions and one of
    multipart_parts, done by the database with a substring test per row and
    id; only the rows that list a candidate come back.
    """
    ids = sorted(set(chunk_ids))
    found: Counter[str] = Counter()
    for start in range(0, len(ids), batch):
        found.update(await db.run(_listed, ids[start:start + batch]))
    return found
