"""Paging with S3's delimiter roll-up, over any key-ordered source of rows.

Objects, versions and multipart uploads are all listed the same way: rows
come in (key, then a per-key order) order; keys with the delimiter after the
prefix collapse into one common prefix, which the listing jumps past in a
single step; a page holds at most ``limit`` entries and prefixes, and is
truncated only if one more item exists.  This module holds that algorithm
once; callers supply a fetch function and say how to read a row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

Row = TypeVar("Row")


@dataclass
class Cursor:
    """Where a listing resumes: strictly after (or at, if ``inclusive``) ``key``;
    with ``sub``, after that row of ``key`` (a version's or upload's order)."""

    key: str | None = None
    inclusive: bool = False
    sub: Any = None
    # A common prefix already returned that could not be jumped past: rows
    # under it are passed over.
    skip: str | None = None


@dataclass
class RolledPage(Generic[Row]):
    """One page: rows, common prefixes, and the position of the last item."""

    rows: list[Row]
    prefixes: list[str]
    truncated: bool
    # When truncated: the last key (with its row) or common prefix (with None).
    last: tuple[str, Row | None] | None


# fetch(cursor, limit) -> up to ``limit`` rows after the cursor, in order.
Fetch = Callable[[Cursor, int], Awaitable[list[Row]]]


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``
    (code-point order, which is UTF-8 byte order), or None if there is none."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            nxt = last + 1
            if 0xD800 <= nxt <= 0xDFFF:  # surrogates are not valid code points
                nxt = 0xE000
            return "".join(chars) + chr(nxt)
    return None


def start_cursor(prefix: str, delimiter: str, marker: str, sub: Any = None) -> Cursor:
    """The cursor for S3's ``marker``/``key-marker`` (exclusive).

    A marker that is itself a rolled-up common prefix skips the whole prefix,
    so paging with a returned marker never yields a prefix twice.
    """
    cursor = Cursor(marker or None, False, sub if marker else None)
    if marker and sub is None and delimiter:
        rest = marker[len(prefix):] if marker.startswith(prefix) else ""
        if rest and rest.find(delimiter) == len(rest) - len(delimiter):
            bound = prefix_upper_bound(marker)
            cursor = Cursor(bound, True) if bound is not None else Cursor(marker, skip=marker)
    if prefix and (cursor.key is None or cursor.key < prefix):
        cursor = Cursor(prefix, True)
    return cursor


async def roll_up(
    fetch: Fetch[Row],
    *,
    prefix: str,
    delimiter: str,
    cursor: Cursor,
    limit: int,
    key_of: Callable[[Row], str],
    sub_of: Callable[[Row], Any] = lambda _row: None,
    batch: int = 1000,
) -> RolledPage[Row]:
    """Collect one page from ``fetch``, rolling keys up to ``delimiter``."""
    rows: list[Row] = []
    prefixes: list[str] = []
    last: tuple[str, Row | None] | None = None
    if limit <= 0:
        return RolledPage(rows, prefixes, False, None)  # S3: max-keys=0 is not truncated
    skip = cursor.skip
    while True:
        want = min(limit + 1 - len(rows) - len(prefixes), batch)
        fetched = await fetch(cursor, want)
        if not fetched:
            return RolledPage(rows, prefixes, False, None)
        jumped = False
        for row in fetched:
            key = key_of(row)
            cursor = Cursor(key, False, sub_of(row), skip)
            if skip is not None and key.startswith(skip):
                continue
            if len(rows) + len(prefixes) >= limit:
                return RolledPage(rows, prefixes, True, last)  # one more exists
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                common = key[: cut + len(delimiter)]
                prefixes.append(common)
                last = (common, None)
                bound = prefix_upper_bound(common)
                if bound is not None:
                    cursor, jumped = Cursor(bound, True), True
                    break
                skip = common
                continue
            rows.append(row)
            last = (key, row)
        if not jumped and len(fetched) < want:
            return RolledPage(rows, prefixes, False, None)
