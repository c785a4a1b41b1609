"""The shared roll-up paging algorithm, over an in-memory sorted source."""

from __future__ import annotations

import bisect

import pytest

from storage.listing import Cursor, prefix_upper_bound, roll_up, start_cursor

KEYS = sorted(["a", "b/1", "b/2", "b/3/x", "c", "d/1", "e\U0010ffff/1", "e\U0010ffff/2", "f"])


def source(keys: list[str], calls: list[int], prefix: str = ""):
    """Rows after the cursor and under ``prefix``, as the database queries return them."""
    keys = [k for k in keys if k.startswith(prefix)]

    async def fetch(cursor: Cursor, limit: int) -> list[str]:
        calls.append(limit)
        if cursor.key is None:
            i = 0
        elif cursor.inclusive:
            i = bisect.bisect_left(keys, cursor.key)
        else:
            i = bisect.bisect_right(keys, cursor.key)
        return keys[i:i + limit]

    return fetch


async def page(marker: str = "", limit: int = 1000, prefix: str = "", delimiter: str = "/"):
    return await roll_up(source(KEYS, [], prefix), prefix=prefix, delimiter=delimiter,
                         cursor=start_cursor(prefix, delimiter, marker), limit=limit,
                         key_of=lambda k: k)


@pytest.mark.trio
async def test_rolls_up_and_jumps():
    calls: list[int] = []
    p = await roll_up(source(KEYS, calls), prefix="", delimiter="/", cursor=Cursor(),
                      limit=1000, key_of=lambda k: k)
    assert p.rows == ["a", "c", "f"]
    assert p.prefixes == ["b/", "d/", "e\U0010ffff/"]
    assert not p.truncated and p.last is None
    assert len(calls) <= 5  # one fetch per jump, not per key


@pytest.mark.trio
async def test_paging_returns_everything_once():
    seen, marker = [], ""
    while True:
        p = await page(marker, limit=2)
        seen += p.rows + p.prefixes
        if not p.truncated:
            break
        marker = p.last[0]
    assert sorted(seen) == ["a", "b/", "c", "d/", "e\U0010ffff/", "f"]  # each exactly once


@pytest.mark.trio
async def test_truncated_only_if_more_exists():
    exact = await page(limit=6)
    assert not exact.truncated
    short = await page(limit=5)
    assert short.truncated and short.last == ("e\U0010ffff/", None)


@pytest.mark.trio
async def test_prefix_and_zero_limit():
    p = await page(prefix="b/")
    assert (p.rows, p.prefixes) == (["b/1", "b/2"], ["b/3/"])
    empty = await page(limit=0)
    assert (empty.rows, empty.prefixes, empty.truncated) == ([], [], False)


def test_bounds_and_start_cursor():
    assert prefix_upper_bound("ab/") == "ab0"
    assert prefix_upper_bound("a\U0010ffff") == "b"
    assert prefix_upper_bound("\U0010ffff") is None
    assert prefix_upper_bound("\ud7ff") == "\ue000"  # surrogates are skipped
    assert start_cursor("", "/", "b/") == Cursor("b0", True)  # a rolled-up prefix marker
    assert start_cursor("", "/", "b/1") == Cursor("b/1", False)
    assert start_cursor("d/", "/", "a") == Cursor("d/", True)
    # A common prefix made only of U+10FFFF has nothing sorting after its
    # subtree to jump to: such a marker is skipped row by row instead.
    top = "\U0010ffff"
    assert start_cursor("", top, top) == Cursor(top, skip=top)


@pytest.mark.trio
async def test_prefixes_that_cannot_be_jumped_are_skipped_once():
    top = "\U0010ffff"
    keys = sorted(["a", f"{top}1", f"{top}2", f"{top}3", f"{top}{top}"])
    seen, marker = [], ""
    while True:
        p = await roll_up(source(keys, []), prefix="", delimiter=top,
                          cursor=start_cursor("", top, marker), limit=1, key_of=lambda k: k)
        seen += p.rows + p.prefixes
        if not p.truncated:
            break
        marker = p.last[0]
    assert seen == ["a", top]
