"""The local chunk store: atomic writes, verification, traversal-proof ids."""

from __future__ import annotations

import os

import pytest

from storage.blobs import ChunkCorrupt, ChunkNotFound, chunk_id_of
from storage.chunkstore import LocalChunkStore

pytestmark = pytest.mark.trio


async def test_put_get_has_delete(tmp_path):
    store = LocalChunkStore(tmp_path)
    data = os.urandom(100_000)
    cid = chunk_id_of(data)
    assert not await store.has_chunk(cid)
    await store.put_chunk(cid, data)
    await store.put_chunk(cid, data)  # idempotent
    assert await store.has_chunk(cid)
    assert await store.get_chunk(cid) == data
    assert store.path_of(cid).parent.parent.parent == tmp_path / "chunks"
    assert list(store.iter_chunk_ids()) == [cid]
    assert os.listdir(tmp_path / "tmp") == []  # no temp files left behind
    await store.delete_chunk(cid)
    with pytest.raises(ChunkNotFound):
        await store.get_chunk(cid)


async def test_corruption_detected_and_quarantined(tmp_path):
    store = LocalChunkStore(tmp_path)
    data = b"hello world" * 1000
    cid = chunk_id_of(data)
    await store.put_chunk(cid, data)
    store.path_of(cid).write_bytes(b"jello world" + data[11:])
    with pytest.raises(ChunkCorrupt):
        await store.get_chunk(cid)
    assert not await store.has_chunk(cid)
    assert len(os.listdir(tmp_path / "corrupt")) == 1


async def test_rewrite_touches_existing_chunk(tmp_path):
    store = LocalChunkStore(tmp_path)
    cid = chunk_id_of(b"x")
    await store.put_chunk(cid, b"x")
    path = store.path_of(cid)
    os.utime(path, (1_000_000, 1_000_000))
    await store.put_chunk(cid, b"x")
    # Garbage collection reads the mtime as "recently used".
    assert path.stat().st_mtime > 1_000_000


@pytest.mark.parametrize("bad", ["../../etc/passwd", "A" * 64, "ab", "0" * 63 + "/", ""])
async def test_malformed_ids_rejected(tmp_path, bad):
    store = LocalChunkStore(tmp_path)
    with pytest.raises(ValueError):
        await store.get_chunk(bad)
    with pytest.raises(ValueError):
        await store.put_chunk(bad, b"x")
