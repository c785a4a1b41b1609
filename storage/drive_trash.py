"""The v2-drive trash: trash, restore, permanent delete and the 30-day purge.

The model ("mark rows"): trashing a file records its current version (chunk
list, size, ETag, type, metadata, tags; small inline bytes as base64) in
its ``drive_files`` row, gives the chunks one reference of the trash's own
in the same transaction, and then deletes the key through the object
service (an ``object.deleted`` event, the usage released).  So S3, SFTP and
every listing no longer see the file, the bytes stay (the chunk GC skips a
referenced chunk), and the key is free for new files: the trashed row's
``key_hash`` is moved aside.  Restoring commits the recorded version at
its original key again (an ``object.created`` event) and drops the trash's
reference; a permanent delete or the purge of rows trashed more than
:data:`RETENTION_DAYS` ago only drops the reference and the row.

The file's Time Machine history (storage/versions.py) goes to the trash
with it: the trash step records each history row (bytes by chunk list, its
``history_at`` and ``version_number``) and references its chunks too, since
deleting the key deletes its history.  Restoring puts the history rows back
in the transaction that commits the current version (the commit's
``before`` hook, so a refused restore leaves nothing), oldest first so row
order stays the order of the versions, each charged to the quota again;
history that no longer fits is dropped, newest kept first (history never
blocks a write).  The current version then gets its number back.

A folder is trashed with every key under it (each a trashed row carrying
the folder's id) and its id row marked; restoring it restores them all.
A file whose folder is itself in the trash is restored to the drive root,
as the document says.  Trashed bytes do not count toward the quota.
"""

from __future__ import annotations

import base64
import functools
import json
import posixpath
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from storage import errors, names, refs, sql
from storage.buckets import BucketInfo
from storage.drive import (
    Drive,
    DriveConflict,
    DriveNotFound,
    FolderRow,
    Scope,
    aware,
    digest,
    fetch_rows,
    sql_value,
)
from storage.object_types import ObjectInfo, StoredData, WriteCondition

RETENTION_DAYS = 30
_PURGE_BATCH = 100


@dataclass(frozen=True)
class TrashItem:
    """One entry of the trash listing."""

    type: str  # file | folder
    id: str
    name: str
    original_path: str
    size: int
    trashed_at: datetime

    @property
    def expires_at(self) -> datetime:
        """When the purge deletes it for good."""
        return self.trashed_at + timedelta(days=RETENTION_DAYS)


def _aside(key: str, row_id: str) -> str:
    # A trashed row keeps its key but not the key's unique slot.
    return digest(f"{key}\x00trash\x00{row_id}")


def _snapshot(info: ObjectInfo) -> dict[str, Any]:
    return {"size": info.size, "etag": info.etag, "content_type": info.content_type,
            "version_number": info.version_number,
            "user_metadata": dict(info.user_metadata), "headers": dict(info.headers),
            "checksums": dict(info.checksums), "tags": dict(info.tags),
            "part_sizes": list(info.part_sizes), "chunks": [list(c) for c in info.chunks],
            "inline": (base64.b64encode(info.inline_data).decode()
                       if info.inline_data is not None else None)}


def _loads(value: Any) -> dict[str, Any]:
    if isinstance(value, str | bytes):
        value = json.loads(value or "null")
    return value if isinstance(value, dict) else {}


# The columns of a Time Machine history row kept in the trash, in the order
# _INSERT_HISTORY writes them after bucket_id and "key".
_HISTORY_COLUMNS = ("version_id", "size", "etag", "content_type", "user_metadata", "headers",
                    "checksums", "chunks", "inline_data", "created_at", "part_sizes", "tags",
                    "history_at", "version_number")
_JSON_COLUMNS: dict[str, Any] = {"user_metadata": {}, "headers": {}, "checksums": {}, "chunks": [],
                 "part_sizes": [], "tags": {}}
_INSERT_HISTORY = (
    'INSERT INTO object_versions (bucket_id, "key", is_latest, is_delete_marker, '
    + ", ".join(f'"{c}"' for c in _HISTORY_COLUMNS) + ") VALUES (?, ?, NULL, ?, "
    + ", ".join("?" for _ in _HISTORY_COLUMNS) + ")")


def _kept_history(row: dict[str, Any]) -> dict[str, Any]:
    """A history row as the trash's JSON keeps it."""
    out = {c: row[c] for c in _HISTORY_COLUMNS}
    for column, empty in _JSON_COLUMNS.items():
        out[column] = sql.json_column(row[column], empty)
    for column in ("created_at", "history_at"):
        out[column] = (aware(row[column]) or datetime.now(UTC)).isoformat()
    inline = row["inline_data"]
    out["inline_data"] = base64.b64encode(inline).decode() if inline is not None else None
    return out


def _history_params(bucket_id: int, key: str, kept: dict[str, Any]) -> list[Any]:
    """The INSERT parameters of a history row the trash kept."""
    values: list[Any] = [bucket_id, key, False]
    for column in _HISTORY_COLUMNS:
        value = kept[column]
        if column in _JSON_COLUMNS:
            value = json.dumps(value)
        elif column in ("created_at", "history_at"):
            value = datetime.fromisoformat(value)
        elif column == "inline_data" and value is not None:
            value = base64.b64decode(value)
        values.append(value)
    return values


def _chunk_lists(snapshot: dict[str, Any]) -> list[list[Any]]:
    """Every chunk list the trash holds references for: the current version's
    and its history's."""
    return [snapshot["chunks"], *(h["chunks"] for h in snapshot.get("history") or ())]


def _trash_steps(row_id: str, bucket_id: int, key: str, snapshot: dict[str, Any],
                 now: datetime, with_folder: str) -> sql.UnitOfWork[None]:
    history = yield (sql.FETCH, "SELECT " + ", ".join(f'"{c}"' for c in _HISTORY_COLUMNS)
                     + ' FROM object_versions WHERE bucket_id = ? AND "key" = ? AND '
                     "history_at IS NOT NULL AND is_delete_marker = ? ORDER BY id",
                     (bucket_id, key, False))
    snapshot = {**snapshot, "history": [_kept_history(dict(h)) for h in history]}
    for chunks in _chunk_lists(snapshot):
        yield from refs.reference_steps(chunks)
    yield (sql.EXECUTE, "UPDATE drive_files SET status = 'trashed', trash = ?, trashed_at = ?, "
           "trashed_with = ?, key_hash = ?, updated_at = ? WHERE id = ?",
           (sql_value(snapshot), now, with_folder, _aside(key, row_id), now, row_id))


def _history_back_steps(bucket: BucketInfo, key: str, snapshot: dict[str, Any]
                        ) -> sql.UnitOfWork[None]:
    """Put the trashed history rows back (inside the restoring commit), each
    with references and usage of its own; what no longer fits the quota is
    dropped, the newest kept first."""
    kept: list[dict[str, Any]] = []
    for h in reversed(snapshot.get("history") or []):
        try:
            yield from refs.charge_steps(bucket.account_id, int(h["size"]), 1)
        except errors.QuotaExceeded:
            continue  # the refused conditional UPDATE changed nothing: the transaction goes on
        kept.append(h)
    for h in reversed(kept):
        yield from refs.reference_steps(h["chunks"])
        yield (sql.EXECUTE, _INSERT_HISTORY, _history_params(bucket.id, key, h))


def _renumber_steps(version_row: int, number: int) -> sql.UnitOfWork[None]:
    yield (sql.EXECUTE, "UPDATE object_versions SET version_number = ? WHERE id = ?",
           (number, version_row))


def _untrash_steps(row_id: str, key: str, snapshot: dict[str, Any],
                   now: datetime) -> sql.UnitOfWork[None]:
    # Only the transaction that takes the row out of the trash drops the
    # trash's references (two nodes, two clicks: never twice).
    yield (sql.EXECUTE, "DELETE FROM drive_files WHERE bucket = (SELECT bucket FROM drive_files "
           "WHERE id = ?) AND key_hash = ? AND id <> ?", (row_id, digest(key), row_id))
    changed = yield (sql.EXECUTE, "UPDATE drive_files SET status = 'active', trash = NULL, "
                     "trashed_at = NULL, trashed_with = '', \"key\" = ?, key_hash = ?, "
                     "updated_at = ? WHERE id = ? AND status = 'trashed'",
                     (key, digest(key), now, row_id))
    if changed:
        yield from refs.unreference_steps(_chunk_lists(snapshot))


def _forget_steps(rows: list[dict[str, Any]]) -> sql.UnitOfWork[None]:
    # Rows another node purged meanwhile are gone: their references are not ours.
    for r in rows:
        gone = yield (sql.EXECUTE, "DELETE FROM drive_files WHERE id = ? AND status = 'trashed'",
                      (r["id"],))
        if gone:
            snapshot = _loads(r["trash"])
            yield from refs.unreference_steps(_chunk_lists({"chunks": [], **snapshot}))


class Trash:
    """Trash and restore over a :class:`Drive`."""

    def __init__(self, drive: Drive) -> None:
        self.drive = drive
        self.objects = drive.objects
        self._db = drive._db

    # -- trashing ---------------------------------------------------------------------

    async def trash_key(self, scope: Scope, key: str, with_folder: str = "") -> str | None:
        """Move one key's latest version to the trash; its row id (None: no object)."""
        try:
            info = await self.objects.head_object(scope.bucket, key)
        except (errors.NoSuchKey, errors.NoSuchVersion):
            return None
        if info.is_delete_marker:
            return None
        row = (await self.drive.file_rows(scope, [key]))[key]
        now = datetime.now(UTC).replace(microsecond=0)
        snapshot = _snapshot(info)
        await sql.retry(lambda: self._db.write(_trash_steps, row["id"], scope.bucket.id, key,
                                               snapshot, now, with_folder))
        try:
            # Only the version recorded: a newer one written meanwhile stays.
            await self.objects.delete_object(scope.bucket, key,
                                             condition=WriteCondition(if_match=frozenset(
                                                 {info.etag})))
        except (errors.PreconditionFailed, errors.NoSuchKey):
            await sql.retry(lambda: self._db.write(_untrash_steps, row["id"], key, snapshot,
                                                   now))
            raise DriveConflict("The file changed while it was being trashed.") from None
        return str(row["id"])

    async def trash_folder(self, scope: Scope, folder: FolderRow) -> None:
        """Trash every key under a folder, and mark the folder."""
        for key in await self.drive.keys_under(scope, folder.path):
            await self.trash_key(scope, key, with_folder=folder.id)
        full = scope.key(folder.path)
        now = datetime.now(UTC).replace(microsecond=0)
        await sql.retry(lambda: self._db.write(_mark_folder_steps, folder.id, full, now))

    # -- listing ----------------------------------------------------------------------

    async def items(self, scope: Scope) -> list[TrashItem]:
        """The trash of the scope, newest first (files trashed with a folder are in it)."""
        files = await fetch_rows(self._db, "SELECT * FROM drive_files WHERE account_id = ? AND "
                                 "bucket = ? AND status = 'trashed' AND trashed_with = ''",
                                 (scope.account_id, scope.bucket.name))
        folders = await fetch_rows(self._db, "SELECT * FROM drive_folders WHERE account_id = ? "
                                   "AND bucket = ? AND trashed_at IS NOT NULL",
                                   (scope.account_id, scope.bucket.name))
        out = [TrashItem("file", r["id"], posixpath.basename(r["key"]),
                         "/" + scope.path(r["key"]), int(_loads(r["trash"]).get("size") or 0),
                         aware(r["trashed_at"]) or datetime.now(UTC))
               for r in files if r["key"].startswith(scope.base)]
        for r in folders:
            if r["path"].startswith(scope.base):
                path = scope.path(r["path"]).rstrip("/")
                out.append(TrashItem("folder", r["id"], path.rpartition("/")[2], "/" + path,
                                     0, aware(r["trashed_at"]) or datetime.now(UTC)))
        out.sort(key=lambda i: (i.trashed_at, i.id), reverse=True)
        return out

    async def _trashed_files(self, scope: Scope, item_id: str) -> tuple[str, list[dict]]:
        """("file"|"folder", the trashed rows of an item); DriveNotFound if none."""
        rows = await fetch_rows(self._db, "SELECT * FROM drive_files WHERE id = ? AND "
                                "account_id = ? AND status = 'trashed'",
                                (item_id, scope.account_id))
        if rows and rows[0]["key"].startswith(scope.base):
            return "file", rows
        folder = await fetch_rows(self._db, "SELECT * FROM drive_folders WHERE id = ? AND "
                                  "account_id = ? AND trashed_at IS NOT NULL",
                                  (item_id, scope.account_id))
        if not folder or not folder[0]["path"].startswith(scope.base):
            raise DriveNotFound(f"No item with ID '{item_id}' is in the trash.")
        rows = await fetch_rows(self._db, "SELECT * FROM drive_files WHERE trashed_with = ? "
                                "AND account_id = ? AND status = 'trashed'",
                                (item_id, scope.account_id))
        return "folder", rows

    # -- restore and delete -----------------------------------------------------------

    async def restore(self, scope: Scope, item_id: str) -> str:
        """Put an item back where it was (a file whose folder is trashed: the root)."""
        kind, rows = await self._trashed_files(scope, item_id)
        for row in rows:
            key = row["key"]
            if kind == "file" and await self._folder_trashed(scope, key):
                key = scope.key(posixpath.basename(key))
            await self._restore_row(scope, row, key)
        if kind == "folder":
            await sql.retry(lambda: self._db.write(_unmark_folder_steps, item_id))
        return kind

    async def _folder_trashed(self, scope: Scope, key: str) -> bool:
        parent = posixpath.dirname(key)
        if not parent or parent + "/" == scope.base:
            return False
        rows = await fetch_rows(self._db, "SELECT id FROM drive_folders WHERE bucket = ? AND "
                                "path = ? AND trashed_at IS NOT NULL",
                                (scope.bucket.name, parent + "/"))
        return bool(rows)

    async def _restore_row(self, scope: Scope, row: dict[str, Any], key: str) -> None:
        names.check_key(key)
        snapshot = _loads(row["trash"])
        inline = snapshot.get("inline")
        stored = StoredData(size=int(snapshot["size"]), md5=b"",
                            chunks=[(c, int(s)) for c, s in snapshot["chunks"]],
                            inline_data=base64.b64decode(inline) if inline is not None else None)
        async def history_back(conn: Any) -> None:
            await sql.drive(conn, _history_back_steps(scope.bucket, key, snapshot))

        try:
            info = await self.objects.commit(
                scope.bucket, key, stored, etag=snapshot["etag"],
                content_type=snapshot["content_type"], user_metadata=snapshot["user_metadata"],
                headers=snapshot["headers"], checksums=snapshot["checksums"],
                tags=snapshot["tags"], part_sizes=snapshot["part_sizes"],
                condition=WriteCondition(if_none_match=True), before=history_back)
        except errors.PreconditionFailed:
            raise DriveConflict(f"A file already exists at /{scope.path(key)}.") from None
        # The restored rows hold their own references now: drop the trash's.
        now = datetime.now(UTC).replace(microsecond=0)
        await sql.retry(lambda: self._db.write(_untrash_steps, row["id"], key, snapshot, now))
        history = snapshot.get("history") or []
        number = snapshot.get("version_number") or (
            int(history[-1]["version_number"] or len(history)) + 1 if history else 1)
        if info.row_id is not None and number != info.version_number:
            await sql.retry(lambda: self._db.write(_renumber_steps, info.row_id, number))

    async def delete(self, scope: Scope, item_id: str) -> None:
        """Delete an item of the trash for good."""
        kind, rows = await self._trashed_files(scope, item_id)
        await sql.retry(lambda: self._db.write(_forget_steps, rows))
        if kind == "folder":
            await sql.retry(lambda: self._db.write(_drop_folder_steps, item_id))

    async def purge(self, now: datetime | None = None) -> int:
        """Delete every item trashed more than :data:`RETENTION_DAYS` ago; how many rows."""
        cutoff = (now or datetime.now(UTC)) - timedelta(days=RETENTION_DAYS)
        done = 0
        while True:
            rows = await fetch_rows(self._db, "SELECT id, trash FROM drive_files WHERE status = "
                                    "'trashed' AND trashed_at < ? ORDER BY trashed_at LIMIT ?",
                                    (cutoff, _PURGE_BATCH))
            if not rows:
                break
            await sql.retry(functools.partial(self._db.write, _forget_steps, rows))
            done += len(rows)
        await sql.retry(lambda: self._db.write(_purge_folders_steps, cutoff))
        return done


def _mark_folder_steps(folder_id: str, full: str, now: datetime) -> sql.UnitOfWork[None]:
    yield (sql.EXECUTE, "UPDATE drive_folders SET trashed_at = ?, path_hash = ? WHERE id = ?",
           (now, _aside(full, folder_id), folder_id))


def _unmark_folder_steps(folder_id: str) -> sql.UnitOfWork[None]:
    rows = yield (sql.FETCH, "SELECT bucket, path FROM drive_folders WHERE id = ?", (folder_id,))
    if rows:
        bucket, path = rows[0]["bucket"], rows[0]["path"]
        yield (sql.EXECUTE, "DELETE FROM drive_folders WHERE bucket = ? AND path_hash = ? "
               "AND id <> ?", (bucket, digest(path), folder_id))
        yield (sql.EXECUTE, "UPDATE drive_folders SET trashed_at = NULL, path_hash = ? "
               "WHERE id = ?", (digest(path), folder_id))


def _drop_folder_steps(folder_id: str) -> sql.UnitOfWork[None]:
    yield (sql.EXECUTE, "DELETE FROM drive_folders WHERE id = ? AND trashed_at IS NOT NULL",
           (folder_id,))


def _purge_folders_steps(cutoff: datetime) -> sql.UnitOfWork[None]:
    yield (sql.EXECUTE, "DELETE FROM drive_folders WHERE trashed_at IS NOT NULL AND "
           "trashed_at < ? AND id NOT IN (SELECT trashed_with FROM drive_files WHERE "
           "status = 'trashed')", (cutoff,))
