"""Blob-layer throughput on loopback: ``.venv/bin/python bench/blob_throughput.py``.

1. Chunk PUT/GET over the node-to-node transport: this process acts as a
   peer node and moves 4 MiB chunks to/from one real node process (the
   receiver fsyncs every chunk; both sides verify SHA-256).
2. Object PUT/GET on a real 3-node cluster (rf=3, w=2, 4 MiB chunks) for
   1 MiB and 64 MiB objects, driven through an in-process ObjectService over
   the ReplicatedBlobStore (the same code path a node's S3/REST adapters
   use; the bytes go over the real transport to the three node processes).

Everything runs in temp dirs on free ports; SQLite metadata.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cluster.transport import TransportClient
from tests.cluster.replication_support import (
    open_gateway,
    start_nodes,
    stop_nodes,
    wait_layout,
)

MiB = 1024 * 1024


def _extra(expect: int) -> str:
    return f"""bootstrap_expect = {expect}
layout_refresh_seconds = 0.5

[storage]
chunk_size = "4MiB"
"""


async def chunk_bench(root: Path) -> None:
    """Transport PUT/GET of 4 MiB chunks between this process and one node."""
    db_url = f"sqlite://{root / 'meta.sqlite3'}"
    nodes = start_nodes(root, db_url, [("node1", "dc1")], _extra(1))
    try:
        secret = (root / "cluster.secret").read_text().strip().encode()
        client = TransportClient("bench", secret)
        addr = f"127.0.0.1:{nodes[0].ports['transport']}"
        blobs = [os.urandom(4 * MiB) for _ in range(64)]
        ids = [hashlib.sha256(b).hexdigest() for b in blobs]
        t = time.perf_counter()
        for cid, data in zip(ids, blobs, strict=True):
            await client.put_chunk(addr, cid, data)
        put = 256 / (time.perf_counter() - t)
        t = time.perf_counter()
        for cid in ids:
            await client.get_chunk(addr, cid)
        get = 256 / (time.perf_counter() - t)
        # Four streams in parallel, as a quorum write / rebalance would use.
        t = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for k in range(4):
                async def reader(k: int = k) -> None:
                    for cid in ids[k::4]:
                        await client.get_chunk(addr, cid)
                nursery.start_soon(reader)
        get4 = 256 / (time.perf_counter() - t)
        await client.aclose()
        print(f"transport chunk PUT 4 MiB x64 (fsync, 1 stream): {put:7.0f} MiB/s")
        print(f"transport chunk GET 4 MiB x64 (1 stream):        {get:7.0f} MiB/s")
        print(f"transport chunk GET 4 MiB x64 (4 streams):       {get4:7.0f} MiB/s")
    finally:
        stop_nodes(nodes)


async def object_bench(root: Path) -> None:
    """Object PUT/GET on a 3-node cluster through the replicated blob layer."""
    db_url = f"sqlite://{root / 'meta.sqlite3'}"
    nodes = start_nodes(root, db_url, [("node1", "dc1"), ("node2", "dc1"), ("node3", "dc1")],
                        _extra(3))
    try:
        async with open_gateway(db_url, root / "cluster.secret") as gw:
            gw.objects.chunk_size = 4 * MiB
            await wait_layout(gw, 1)
            for size, count in ((1 * MiB, 32), (64 * MiB, 4)):
                data = os.urandom(size)
                t = time.perf_counter()
                for i in range(count):
                    await gw.put(f"bench-{size}-{i}", data)
                put = size * count / MiB / (time.perf_counter() - t)
                t = time.perf_counter()
                for i in range(count):
                    assert await gw.get(f"bench-{size}-{i}") == data
                get = size * count / MiB / (time.perf_counter() - t)
                label = f"{size // MiB} MiB x{count}"
                print(f"object PUT {label:10} (rf=3, w=2): {put:7.0f} MiB/s   "
                      f"GET: {get:7.0f} MiB/s")
    finally:
        stop_nodes(nodes)


async def main() -> None:
    """Run both benchmarks in fresh temp dirs."""
    print(f"cpus: {os.cpu_count()}  (loopback, SQLite metadata; ObjectService in-process, "
          "not S3)")
    with tempfile.TemporaryDirectory() as a:
        await chunk_bench(Path(a))
    with tempfile.TemporaryDirectory() as b:
        await object_bench(Path(b))


if __name__ == "__main__":
    trio.run(main)
