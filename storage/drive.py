"""Folders and files with ids over the flat key space (v2-drive, seed 004).

The mapping (see the README's v2-drive section):

* a caller's drive is its default bucket (``live`` keys) or the hidden
  folder :data:`SANDBOX` of it (``cs_test_sk_`` keys): a :class:`Scope`;
* a **folder** is a key prefix ending in ``/`` and may have a folder marker
  object (the empty key ``path/`` that SFTP ``mkdir`` and S3 consoles make);
  its id (``fld_...``) is a row of ``drive_folders`` given the first time
  v2-drive sees the prefix, whoever made it; ``fld_root`` is the drive root;
* a **file** is an object key; its id (``fl_...``), custom metadata,
  pending presigned upload and trash state are a row of ``drive_files``,
  likewise given on first sight, so an upload through S3 or SFTP gets an id
  when v2-drive first lists it;
* a **move or rename** of a folder is a server-side copy of every key under
  the prefix to the new prefix followed by a delete of the old key, through
  the core's object service (chunks are shared by reference, no bytes move),
  so S3 and SFTP see the keys moved and every event is recorded; then the
  id rows follow their keys, so ids survive moves.

Ids stay with the key: a key deleted through S3 and written again keeps its
id.  A row whose key has no object is a file that does not exist (404).
"""

from __future__ import annotations

import hashlib
import itertools
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from storage import errors, names, sql
from storage.buckets import BucketInfo
from storage.objects import ObjectService

ROOT_ID = "fld_root"
# The sandbox of cs_test_sk_ keys: a folder of the default bucket that live
# listings of the drive root leave out.
SANDBOX = ".cloudy-sandbox/"
MAX_DEPTH = 50
_BATCH = 1000
_IN_CHUNK = 200  # keys per IN (...) lookup


class DriveNotFound(errors.StorageError):
    """No file or folder of the caller's drive has this id."""

    code = "DriveNotFound"
    kind = errors.Kind.NOT_FOUND


class DriveInvalid(errors.StorageError):
    """A name, destination or depth the drive refuses."""

    code = "DriveInvalid"
    kind = errors.Kind.INVALID


class DriveConflict(errors.StorageError):
    """The destination of a move or a new folder already exists."""

    code = "DriveConflict"
    kind = errors.Kind.CONFLICT


def digest(text: str) -> str:
    """The fixed-width form of a key or path used by the unique indexes."""
    return hashlib.sha256(text.encode()).hexdigest()


async def fetch_rows(db: Any, statement: str, params: Sequence[Any] = ()) -> list[dict]:
    """Rows of a read-only query written with ``?`` placeholders, on either backend."""

    async def q(fetch: Any, dialect: str) -> list[dict]:
        text = statement
        if dialect == "postgres":  # asyncpg numbers its placeholders
            counter = itertools.count(1)
            text = re.sub(r"\?", lambda _m: f"${next(counter)}", statement)
        return await fetch(text, list(params))

    return await db.read(q)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def aware(ts: Any) -> datetime | None:
    """A datetime from a row (SQLite hands back text or naive UTC)."""
    if ts is None:
        return None
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts)
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Scope:
    """Where a caller's drive lives: a bucket and a base prefix."""

    account_id: str
    bucket: BucketInfo
    base: str = ""

    def key(self, path: str) -> str:
        """The object key of a drive path (``a/b.txt``)."""
        return self.base + path

    def path(self, key: str) -> str:
        """The drive path of an object key."""
        return key[len(self.base):]

    def hidden(self, path: str) -> bool:
        """Whether a drive path is one the root listing leaves out."""
        return self.base == "" and path.startswith(SANDBOX)


@dataclass(frozen=True)
class FolderRow:
    """A folder id row: ``path`` is relative to the scope ("" for the root)."""

    id: str
    path: str
    color: str
    created_at: datetime | None

    @property
    def name(self) -> str:
        """The folder's own name ("" for the root)."""
        return self.path.rstrip("/").rpartition("/")[2]

    @property
    def parent_path(self) -> str:
        """The path of the folder holding this one."""
        head = self.path.rstrip("/").rpartition("/")[0]
        return head + "/" if head else ""


def check_name(name: Any) -> str:
    """A file or folder name: one path segment, valid inside a key."""
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise DriveInvalid("name must be a non-empty name without '/'.")
    names.check_key(name)
    return name


# -- units of work ------------------------------------------------------------------

_DEFAULTS: dict[str, dict[str, Any]] = {
    "drive_files": {"status": "active", "mime_type": "", "checksum_sha256": "",
                    "metadata": "{}", "trashed_with": ""},
    "drive_folders": {"color": ""},
}


def _ensure_steps(table: str, column: str, prefix: str, account_id: str, bucket: str,
                  values: Sequence[str], extra: dict[str, Any]) -> sql.UnitOfWork[dict[str, dict]]:
    """Give each of ``values`` (keys or paths) a row if it has none; their rows."""
    now = _now()
    # Tortoise's defaults live in Python, not in the schema: raw inserts give them.
    extra = {**_DEFAULTS[table], **extra}
    cols = ["id", "account_id", "bucket", column, f"{column}_hash", *extra, "created_at"]
    if table == "drive_files":
        cols.append("updated_at")
    rows = []
    for v in values:
        row = [f"{prefix}{secrets.token_hex(6)}", account_id, bucket, v, digest(v),
               *extra.values(), now]
        rows.append(row + ([now] if table == "drive_files" else []))
    if rows:
        quoted = ", ".join(f'"{c}"' for c in cols)
        yield (sql.MANY, f"INSERT INTO {table} ({quoted}) VALUES ({', '.join('?' * len(cols))}) "
               f"ON CONFLICT (bucket, {column}_hash) DO NOTHING", rows)
    found: dict[str, dict] = {}
    for i in range(0, len(values), _IN_CHUNK):
        part = [digest(v) for v in values[i:i + _IN_CHUNK]]
        got = yield (sql.FETCH, f"SELECT * FROM {table} WHERE bucket = ? AND {column}_hash IN "
                     f"({', '.join('?' * len(part))})", (bucket, *part))
        found.update({r[column]: r for r in got})
    return found


def _move_rows_steps(bucket: str, moves: Sequence[tuple[str, str]],
                     folder_moves: Sequence[tuple[str, str]]) -> sql.UnitOfWork[None]:
    """Point the id rows of moved keys and folders at their new names."""
    for table, column, pairs in (("drive_files", "key", moves),
                                 ("drive_folders", "path", folder_moves)):
        for old, new in pairs:
            # A row already at the destination belonged to what the move replaced.
            yield (sql.EXECUTE, f"DELETE FROM {table} WHERE bucket = ? AND {column}_hash = ?",
                   (bucket, digest(new)))
            yield (sql.EXECUTE, f'UPDATE {table} SET "{column}" = ?, {column}_hash = ? '
                   f"WHERE bucket = ? AND {column}_hash = ?",
                   (new, digest(new), bucket, digest(old)))


def _update_steps(table: str, row_id: str, account_id: str,
                  changes: dict[str, Any]) -> sql.UnitOfWork[int]:
    sets = ", ".join(f'"{c}" = ?' for c in changes)
    return (yield (sql.EXECUTE, f"UPDATE {table} SET {sets} WHERE id = ? AND account_id = ?",
                   (*[sql_value(v) for v in changes.values()], row_id, account_id)))


def sql_value(value: Any) -> Any:
    """A Python value as a raw-SQL parameter (JSON for dicts)."""
    import json

    return json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else value


class Drive:
    """Folder and file ids, moves and renames over the object service."""

    def __init__(self, db: Any, objects: ObjectService) -> None:
        self._db = db
        self.objects = objects

    # -- ids ------------------------------------------------------------------------

    async def file_rows(self, scope: Scope, keys: Sequence[str],
                        **extra: Any) -> dict[str, dict]:
        """The id rows of object ``keys`` (full keys), made when missing."""
        return await sql.retry(lambda: self._db.write(
            _ensure_steps, "drive_files", "key", "fl_", scope.account_id, scope.bucket.name,
            list(dict.fromkeys(keys)), {k: sql_value(v) for k, v in extra.items()}))

    async def folder_rows(self, scope: Scope, paths: Sequence[str]) -> dict[str, FolderRow]:
        """The id rows of drive folder ``paths`` (relative, ending in ``/``)."""
        wanted = [p for p in dict.fromkeys(paths) if p]
        full = [scope.key(p) for p in wanted]
        got = await sql.retry(lambda: self._db.write(
            _ensure_steps, "drive_folders", "path", "fld_", scope.account_id, scope.bucket.name,
            full, {}))
        out = {p: _folder(scope, got[scope.key(p)]) for p in wanted}
        if "" in paths:
            out[""] = FolderRow(ROOT_ID, "", "", None)
        return out

    async def _row(self, table: str, scope: Scope, row_id: str) -> dict | None:
        rows = await fetch_rows(self._db, f"SELECT * FROM {table} WHERE id = ? AND "
                                "account_id = ? AND bucket = ?",
                                (row_id, scope.account_id, scope.bucket.name))
        return rows[0] if rows else None

    async def folder(self, scope: Scope, folder_id: str | None) -> FolderRow:
        """The folder with this id in the scope; NotFound if there is none."""
        if folder_id in (None, "", ROOT_ID):
            return FolderRow(ROOT_ID, "", "", None)
        row = await self._row("drive_folders", scope, str(folder_id))
        if row is None or row.get("trashed_at") or not row["path"].startswith(scope.base):
            raise DriveNotFound(f"The folder with ID '{folder_id}' was not found.")
        return _folder(scope, row)

    async def file(self, scope: Scope, file_id: str) -> dict:
        """The id row of a file of the scope; NotFound if there is none."""
        row = await self._row("drive_files", scope, file_id)
        if row is None or not row["key"].startswith(scope.base):
            raise DriveNotFound(f"The file with ID '{file_id}' was not found.")
        return row

    async def known_file_id(self, bucket: str, key: str) -> str | None:
        """The id a key has or last had (a trashed file's), without making one."""
        rows = await fetch_rows(self._db, "SELECT id FROM drive_files WHERE bucket = ? AND "
                                "key_hash = ?", (bucket, digest(key)))
        if not rows:
            rows = await fetch_rows(self._db, "SELECT id FROM drive_files WHERE bucket = ? AND "
                                    "status = 'trashed' AND \"key\" = ? ORDER BY trashed_at "
                                    "DESC LIMIT 1", (bucket, key))
        return str(rows[0]["id"]) if rows else None

    async def update_file(self, scope: Scope, file_id: str, **changes: Any) -> None:
        """Change columns of a file's row."""
        await sql.retry(lambda: self._db.write(_update_steps, "drive_files", file_id,
                                               scope.account_id, changes))

    async def update_folder(self, scope: Scope, folder_id: str, **changes: Any) -> None:
        """Change columns of a folder's row."""
        await sql.retry(lambda: self._db.write(_update_steps, "drive_folders", folder_id,
                                               scope.account_id, changes))

    # -- walking ----------------------------------------------------------------------

    async def keys_under(self, scope: Scope, path: str) -> list[str]:
        """Every key under a drive folder path (full keys), in key order."""
        prefix, marker, out = scope.key(path), "", []
        while True:
            page = await self.objects.list_objects(scope.bucket, prefix=prefix, marker=marker,
                                                   max_keys=_BATCH)
            out += [e.key for e in page.entries]
            if not page.is_truncated or not page.next_marker:
                return out
            marker = page.next_marker

    async def children(self, scope: Scope, path: str) -> tuple[list[str], list[Any]]:
        """The sub-folder paths and the file entries directly in a folder."""
        prefix, marker = scope.key(path), ""
        folders: list[str] = []
        files: list[Any] = []
        while True:
            page = await self.objects.list_objects(scope.bucket, prefix=prefix, delimiter="/",
                                                   marker=marker, max_keys=_BATCH)
            folders += [scope.path(p) for p in page.common_prefixes
                        if not scope.hidden(scope.path(p))]
            files += [e for e in page.entries if not e.key.endswith("/")]
            if not page.is_truncated or not page.next_marker:
                return folders, files
            marker = page.next_marker

    async def exists(self, scope: Scope, path: str) -> bool:
        """Whether a folder path has any key under it (or a marker)."""
        page = await self.objects.list_objects(scope.bucket, prefix=scope.key(path), max_keys=1)
        return bool(page.entries)

    # -- changes ----------------------------------------------------------------------

    async def make_folder(self, scope: Scope, parent: FolderRow, name: str) -> FolderRow:
        """A new folder (its marker object, so S3 and SFTP see it)."""
        path = f"{parent.path}{check_name(name)}/"
        if path.count("/") > MAX_DEPTH:
            raise DriveInvalid(f"Folders nest at most {MAX_DEPTH} levels deep.")
        if await self.exists(scope, path):
            raise DriveConflict(f"A folder named '{name}' already exists there.")
        await self.objects.put_object(scope.bucket, names.check_key(scope.key(path)),
                                      _empty(), content_type="application/x-directory")
        return (await self.folder_rows(scope, [path]))[path]

    async def move_folder(self, scope: Scope, folder: FolderRow, new_path: str) -> None:
        """Move (or rename) a folder: copy every key under it, then delete the old keys."""
        if new_path == folder.path:
            return
        if new_path.startswith(folder.path):
            raise DriveInvalid("A folder cannot move into itself.")
        if new_path.count("/") > MAX_DEPTH:
            raise DriveInvalid(f"Folders nest at most {MAX_DEPTH} levels deep.")
        if await self.exists(scope, new_path):
            raise DriveConflict("A folder of that name already exists at the destination.")
        old_full, new_full = scope.key(folder.path), scope.key(new_path)
        keys = await self.keys_under(scope, folder.path)
        moves = [(k, new_full + k[len(old_full):]) for k in keys]
        for _, new in moves:
            names.check_key(new)
        await self._copy_then_delete(scope.bucket, moves)
        # Folder rows under the old prefix follow (including ones with no marker).
        folder_moves = [(p, new_full + p[len(old_full):])
                        for p in await self._folder_paths_under(scope, old_full)]
        await sql.retry(lambda: self._db.write(_move_rows_steps, scope.bucket.name, moves,
                                               folder_moves))

    async def move_file(self, scope: Scope, key: str, new_key: str) -> None:
        """Move (or rename) one file, its id row following it."""
        if new_key == key:
            return
        names.check_key(new_key)
        await self._copy_then_delete(scope.bucket, [(key, new_key)])
        await sql.retry(lambda: self._db.write(_move_rows_steps, scope.bucket.name,
                                               [(key, new_key)], []))

    async def _copy_then_delete(self, bucket: BucketInfo,
                                moves: Iterable[tuple[str, str]]) -> None:
        # All copies first: an interrupted move leaves keys at both places,
        # never a key at neither.
        moves = list(moves)
        for old, new in moves:
            await self.objects.copy_object(bucket, old, bucket, new)
        for old, _ in moves:
            await self.objects.delete_object(bucket, old)

    async def _folder_paths_under(self, scope: Scope, full_prefix: str) -> list[str]:
        rows = await fetch_rows(self._db, "SELECT path FROM drive_folders WHERE bucket = ? "
                                "AND account_id = ?", (scope.bucket.name, scope.account_id))
        return [r["path"] for r in rows if r["path"].startswith(full_prefix)]


def _folder(scope: Scope, row: dict) -> FolderRow:
    return FolderRow(row["id"], scope.path(row["path"]), row.get("color") or "",
                     aware(row.get("created_at")))


async def _empty() -> Any:
    if False:  # an async generator that yields nothing: the empty body
        yield b""
