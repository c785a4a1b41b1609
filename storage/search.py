"""Full-text search of v2-drive over the metadata database's own text index.

What is indexed, per key: its name (split on punctuation, so
``Q3_Financial_Report.pdf`` is ``q3 financial report pdf``), the text of
supported formats (``text/*``, JSON, CSV, Markdown, XML, YAML by type or
extension; the first :data:`MAX_TEXT` bytes), its tags, its S3 user
metadata and its v2-drive custom metadata; and every folder prefix by name.
SQLite keeps the terms in the FTS5 table ``drive_search`` (ranked with
bm25, the name weighing most); PostgreSQL in the ``tsv`` column of
``drive_search_docs`` (GIN index, ``ts_rank`` with weights A-D).

Kept current for changes through every protocol by reading the events
outbox: :meth:`SearchIndex.catch_up` refreshes each key named by an event
after the ``drive-search`` cursor (in ``outbox_cursors``) from the key's
*current* state, so replaying an event, two nodes doing it at once or
events out of order all leave the same index.  Every node's ``drive-search``
worker catches up periodically and each search catches up first, so a
search sees every change committed before it.

Only buckets v2-drive serves are indexed: refreshing every changed key of
every bucket cost S3 a sixth of its GET 4 KiB and 1 MiB rates while the
worker caught up after a PUT run (bench/s3_bench.py, measured with the
worker on and off).  v2-drive *enrols* a drive's bucket the first time it
serves it (:meth:`SearchIndex.enroll`: a ``drive-search:<bucket id>`` row of
``outbox_cursors``, event_id 0 until the bucket's existing keys have been
indexed once, 1 after); the next catch-up indexes those keys, then events
keep them current.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from storage import errors, sql
from storage.buckets import BucketInfo
from storage.drive import digest, fetch_rows
from storage.objects import ObjectService

CURSOR = "drive-search"
# One outbox_cursors row per enrolled bucket: this prefix and the bucket's id
# (13 + at most 19 digits fits the column's 32).
ENROLLED = CURSOR + ":"
MAX_TEXT = 1024 * 1024
_BATCH = 500
# Words are letters and digits: "_" and "." split names as the document's highlights do.
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_TEXT_TYPES = ("application/json", "application/xml", "application/x-yaml",
               "application/yaml", "application/csv")
_TEXT_EXT = (".txt", ".md", ".markdown", ".csv", ".tsv", ".json", ".xml", ".yaml", ".yml",
             ".log", ".ini", ".toml", ".html", ".htm")
_OBJECT_EVENTS = ("object.created", "object.updated", "object.deleted")


def terms(text: str) -> str:
    """The words of ``text``, lower-case, space-separated."""
    return " ".join(w.lower() for w in _WORD.findall(text))


def is_text(key: str, content_type: str) -> bool:
    """Whether the content of a key is indexed."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    return (ctype.startswith("text/") or ctype in _TEXT_TYPES
            or posixpath.splitext(key)[1].lower() in _TEXT_EXT)


def query_words(q: str) -> list[str]:
    """The words of a query (at most 16); empty if it has none."""
    return [w.lower() for w in _WORD.findall(q)][:16]


def highlight(name: str, words: Sequence[str]) -> str:
    """``name`` with every word that a query word starts in ``<mark>``."""
    def mark(m: re.Match[str]) -> str:
        word = m.group(0)
        return f"<mark>{word}</mark>" if any(word.lower().startswith(w) for w in words) else word

    return _WORD.sub(mark, name)


@dataclass(frozen=True)
class Hit:
    """One result."""

    kind: str  # file | folder
    bucket: str
    key: str
    mime: str
    score: float


# -- writing the index ------------------------------------------------------------------


def _insert_steps(dialect: str, doc: str, account_id: str, bucket: str, key: str, kind: str,
                  mime: str, fields: dict[str, str]) -> sql.UnitOfWork[None]:
    rows = yield (sql.FETCH, "INSERT INTO drive_search_docs (doc_key, account_id, bucket, "
                  '"key", kind, mime, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id',
                  (doc, account_id, bucket, key, kind, mime, datetime.now(UTC)))
    row_id = rows[0]["id"]
    if dialect == "postgres":
        yield (sql.EXECUTE, "UPDATE drive_search_docs SET tsv = "
               "setweight(to_tsvector('simple', ?), 'A') || "
               "setweight(to_tsvector('simple', ?), 'B') || "
               "setweight(to_tsvector('simple', ?), 'C') || "
               "setweight(to_tsvector('simple', ?), 'D') WHERE id = ?",
               (fields["name"], fields["tags"], fields["metadata"], fields["content"], row_id))
    else:
        yield (sql.EXECUTE, "INSERT INTO drive_search (rowid, name, content, tags, metadata) "
               "VALUES (?, ?, ?, ?, ?)", (row_id, fields["name"], fields["content"],
                                           fields["tags"], fields["metadata"]))


def _index_steps(dialect: str, account_id: str, bucket: str, key: str, mime: str,
                 fields: dict[str, str] | None, folders: Sequence[str]) -> sql.UnitOfWork[None]:
    """Replace the document of a file (``fields`` None: a folder marker, no
    file document) and make sure its folders have theirs, in one transaction."""
    if fields is not None:
        doc = digest(f"{bucket}\n{key}")
        yield from _drop_steps(dialect, [doc])
        yield from _insert_steps(dialect, doc, account_id, bucket, key, "file", mime, fields)
    for folder in folders:
        doc = digest(f"{bucket}\n{folder}")
        # A folder's document only depends on its name: write it once.
        if not (yield (sql.FETCH, "SELECT id FROM drive_search_docs WHERE doc_key = ?", (doc,))):
            name = {"name": terms(posixpath.basename(folder[:-1])), "content": "", "tags": "",
                    "metadata": ""}
            yield from _insert_steps(dialect, doc, account_id, bucket, folder, "folder", "",
                                     name)


def _drop_steps(dialect: str, docs: Sequence[str]) -> sql.UnitOfWork[None]:
    for doc in docs:
        rows = yield (sql.FETCH, "SELECT id FROM drive_search_docs WHERE doc_key = ?", (doc,))
        for r in rows:
            if dialect != "postgres":
                yield (sql.EXECUTE, "DELETE FROM drive_search WHERE rowid = ?", (r["id"],))
            yield (sql.EXECUTE, "DELETE FROM drive_search_docs WHERE id = ?", (r["id"],))


def _advance_steps(event_id: int) -> sql.UnitOfWork[None]:
    now = datetime.now(UTC)
    yield (sql.EXECUTE, "INSERT INTO outbox_cursors (name, event_id, updated_at) VALUES (?, 0, ?) "
           "ON CONFLICT (name) DO NOTHING", (CURSOR, now))
    yield (sql.EXECUTE, "UPDATE outbox_cursors SET event_id = ?, updated_at = ? "
           "WHERE name = ? AND event_id < ?", (event_id, now, CURSOR, event_id))


def _enroll_steps(bucket_id: int) -> sql.UnitOfWork[None]:
    yield (sql.EXECUTE, "INSERT INTO outbox_cursors (name, event_id, updated_at) VALUES (?, 0, ?) "
           "ON CONFLICT (name) DO NOTHING", (f"{ENROLLED}{bucket_id}", datetime.now(UTC)))


def _mark_indexed_steps(bucket_id: int) -> sql.UnitOfWork[None]:
    yield (sql.EXECUTE, "UPDATE outbox_cursors SET event_id = 1, updated_at = ? WHERE name = ?",
           (datetime.now(UTC), f"{ENROLLED}{bucket_id}"))


def _forget_steps() -> sql.UnitOfWork[None]:
    # Enrolments of deleted buckets: SQLite may give a deleted bucket's id to a new one.
    yield (sql.EXECUTE, "DELETE FROM outbox_cursors WHERE name LIKE ? AND name NOT IN "
           "(SELECT ? || CAST(id AS TEXT) FROM buckets)", (ENROLLED + "%", ENROLLED))


class SearchIndex:
    """Keeps the index current and answers queries."""

    def __init__(self, db: Any, objects: ObjectService, buckets: Any) -> None:
        self._db = db
        self.objects = objects
        self.buckets = buckets
        self._dialect: str | None = None
        self._enrolled: set[int] = set()  # bucket ids this process knows are enrolled

    async def dialect(self) -> str:
        """``sqlite`` or ``postgres``."""
        if self._dialect is None:
            async def q(fetch: Any, dialect: str) -> str:
                return dialect

            self._dialect = str(await self._db.read(q))
        return self._dialect

    async def _write(self, fn: Any, *args: Any) -> None:
        await sql.retry(lambda: self._db.write(fn, *args))

    async def refresh(self, bucket: BucketInfo, key: str,
                      custom: dict[str, Any] | None = None) -> None:
        """Index the current state of one key (or drop it when it is gone)."""
        dialect = await self.dialect()
        gone = [digest(f"{bucket.name}\n{key}")]
        try:
            info = await self.objects.head_object(bucket, key)
        except (errors.NoSuchKey, errors.NoSuchVersion):
            info = None
        if info is None or info.is_delete_marker:
            # (An emptied folder's document is dropped when a search meets it.)
            if not key.endswith("/"):
                await self._write(_drop_steps, dialect, gone)
            return
        if key.endswith("/"):  # a folder marker: the folder itself and its parents
            await self._write(_index_steps, dialect, bucket.account_id, bucket.name, key, "",
                              None, [*_folders(key), key])
            return
        content = ""
        if is_text(key, info.content_type) and info.size:
            data = b""
            async for piece in self.objects.read_object(info, 0, min(info.size, MAX_TEXT)):
                data += piece
            content = terms(data.decode("utf-8", "ignore"))
        if custom is None:
            custom = await self._custom(bucket.name, key)
        meta = " ".join(f"{k} {v}" for k, v in info.user_metadata.items())
        meta += " " + " ".join(f"{t} {k} {v}" for t, f in custom.items() for k, v in f.items())
        fields = {"name": terms(posixpath.basename(key)), "content": content,
                  "tags": terms(" ".join(f"{k} {v}" for k, v in info.tags.items())),
                  "metadata": terms(meta)}
        await self._write(_index_steps, dialect, bucket.account_id, bucket.name, key,
                          info.content_type, fields, _folders(key))

    async def _custom(self, bucket: str, key: str) -> dict[str, Any]:
        rows = await fetch_rows(self._db, "SELECT metadata FROM drive_files WHERE bucket = ? AND "
                                "key_hash = ?", (bucket, digest(key)))
        value = rows[0]["metadata"] if rows else None
        if isinstance(value, str | bytes):
            value = json.loads(value or "{}")
        return value if isinstance(value, dict) else {}

    async def enroll(self, bucket: BucketInfo) -> None:
        """Index ``bucket`` from now on; its existing keys at the next catch-up."""
        if bucket.id in self._enrolled:
            return
        await self._write(_enroll_steps, bucket.id)
        self._enrolled.add(bucket.id)

    async def _enrolment(self) -> dict[str, int]:
        """{bucket name: 0 (keys not indexed yet) or 1} of the enrolled buckets."""
        rows = await fetch_rows(self._db, "SELECT b.name, c.event_id FROM outbox_cursors c "
                                "JOIN buckets b ON c.name = ? || CAST(b.id AS TEXT)",
                                (ENROLLED,))
        return {r["name"]: int(r["event_id"]) for r in rows}

    async def _index_existing(self, enrolled: dict[str, int]) -> None:
        """Index every key of the buckets enrolled since the last catch-up."""
        for name in [n for n, state in enrolled.items() if state == 0]:
            try:
                bucket = await self.buckets.get(name)
            except errors.NoSuchBucket:
                continue
            marker = ""
            while True:
                page = await self.objects.list_objects(bucket, marker=marker, max_keys=_BATCH)
                for entry in page.entries:
                    await self.refresh(bucket, entry.key)
                if not page.is_truncated or not page.next_marker:
                    break
                marker = page.next_marker
            await self._write(_mark_indexed_steps, bucket.id)

    async def catch_up(self, limit_batches: int = 100) -> int:
        """Refresh every key of an enrolled bucket named by events after the
        cursor (indexing newly enrolled buckets first); events read."""
        await self._index_existing(await self._enrolment())
        done = 0
        for _ in range(limit_batches):
            cursor = await fetch_rows(self._db, "SELECT event_id FROM outbox_cursors WHERE "
                                      "name = ?", (CURSOR,))
            after = int(cursor[0]["event_id"]) if cursor else 0
            rows = await fetch_rows(self._db, 'SELECT id, type, bucket, "key" FROM events '
                                    "WHERE id > ? ORDER BY id LIMIT ?", (after, _BATCH))
            if not rows:
                break
            # Read after the events: a bucket enrolled later than this read
            # has its keys indexed from their state then, these changes included.
            enrolled = await self._enrolment()
            for key in dict.fromkeys((r["bucket"], r["key"]) for r in rows
                                     if r["type"] in _OBJECT_EVENTS and r["key"]
                                     and r["bucket"] in enrolled):
                await self._refresh_named(*key)
            for r in rows:
                if r["type"] == "bucket.deleted" and r["bucket"]:
                    await self._drop_bucket(r["bucket"])
            await self._write(_advance_steps, int(rows[-1]["id"]))
            done += len(rows)
        return done

    async def _refresh_named(self, bucket_name: str, key: str) -> None:
        try:
            bucket = await self.buckets.get(bucket_name)
        except errors.NoSuchBucket:
            return await self._drop_bucket(bucket_name)
        await self.refresh(bucket, key)

    async def _drop_bucket(self, bucket_name: str) -> None:
        rows = await fetch_rows(self._db, "SELECT doc_key FROM drive_search_docs WHERE bucket = ?",
                                (bucket_name,))
        await self._write(_drop_steps, await self.dialect(), [r["doc_key"] for r in rows])
        await self._write(_forget_steps)

    # -- querying -----------------------------------------------------------------------

    async def search(self, bucket: str, words: Sequence[str], *, base: str = "",
                     hide: str = "", kind: str | None = None, mime: str | None = None,
                     limit: int = 1000) -> tuple[list[Hit], float]:
        """Hits for all ``words`` (each a prefix) in a bucket, best first; and took_ms."""
        started = time.monotonic()
        if not words:
            return [], 0.0
        dialect = await self.dialect()
        where = ['d.bucket = ?']
        if kind:
            where.append("d.kind = ?")
        if mime:
            where.append("d.mime = ?")
        if dialect == "postgres":
            tsq = " & ".join(f"{w}:*" for w in words)
            rows = await fetch_rows(
                self._db, "SELECT d.\"key\", d.kind, d.mime, d.bucket, "
                "ts_rank(d.tsv, to_tsquery('simple', ?)) AS rank FROM drive_search_docs d "
                f"WHERE {' AND '.join(where)} AND d.tsv @@ to_tsquery('simple', ?) "
                "ORDER BY rank DESC, d.id LIMIT ?",
                [tsq, bucket, *([kind] if kind else []), *([mime] if mime else []), tsq,
                 limit * 2])
            scored = [(r, float(r["rank"]) / (1.0 + float(r["rank"]))) for r in rows]
        else:
            match = " ".join(f'"{w}"*' for w in words)
            rows = await fetch_rows(
                self._db, "SELECT d.\"key\", d.kind, d.mime, d.bucket, "
                "bm25(drive_search, 10.0, 1.0, 4.0, 2.0) AS rank FROM drive_search s "
                "JOIN drive_search_docs d ON d.id = s.rowid "
                f"WHERE drive_search MATCH ? AND {' AND '.join(where)} "
                "ORDER BY rank, d.id LIMIT ?",
                [match, bucket, *([kind] if kind else []), *([mime] if mime else []),
                 limit * 2])
            # bm25 is negative, lower is better: map onto (0, 1).
            scored = [(r, 1.0 - math.exp(float(r["rank"]) / 10.0)) for r in rows]
        hits = [Hit(r["kind"], r["bucket"], r["key"], r["mime"] or "", round(max(s, 0.01), 2))
                for r, s in scored
                if r["key"].startswith(base) and not (hide and r["key"].startswith(hide))]
        return hits[:limit], round((time.monotonic() - started) * 1000, 1)

    async def forget_missing_folder(self, bucket: str, folder: str) -> None:
        """Drop a folder document whose prefix has no key any more."""
        await self._write(_drop_steps, await self.dialect(), [digest(f"{bucket}\n{folder}")])


def _folders(key: str) -> list[str]:
    parts = key.split("/")[:-1]
    return ["/".join(parts[:i]) + "/" for i in range(1, len(parts) + 1) if all(parts[:i])]
