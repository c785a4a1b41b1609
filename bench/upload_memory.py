"""Stream a large object through the storage core and report memory and speed.

    .venv/bin/python bench/upload_memory.py [--size 1GiB] [--chunk-size 4MiB]

The object service (SQLite metadata, local chunk store in a temp dir) takes
the upload as a stream of 64 KiB pieces, as a network body arrives.  The
process's resident memory is sampled during the upload: it must stay near a
few chunks, whatever the object size.  Then the object is read back and
verified.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

import psutil
import trio

from config import parse_size
from storage.accounts import AccountService
from storage.bridge import AsyncioBridge
from storage.buckets import BucketService
from storage.chunkstore import LocalChunkStore
from storage.crypto import SecretBox
from storage.db import Database
from storage.objects import ObjectService

MiB = 1024 * 1024


async def main(size: int, chunk_size: int) -> None:
    proc = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        bridge = AsyncioBridge()
        bridge.start()
        db = Database(f"sqlite://{tmp}/meta.sqlite3", bridge)
        await db.open()
        try:
            accounts = AccountService(db, SecretBox(b"bench-secret-0123456789"),
                                      default_quota=size * 2)
            account = await accounts.create_account("bench@example.com")
            bucket = await BucketService(db).create(account.id, "bench")
            objects = ObjectService(db, LocalChunkStore(Path(tmp) / "chunks"),
                                    chunk_size=chunk_size)
            piece = os.urandom(64 * 1024)
            expected = hashlib.md5()

            async def body():
                for _ in range(size // len(piece)):
                    expected.update(piece)
                    yield piece

            baseline = proc.memory_info().rss
            peak = baseline
            done = trio.Event()

            async def sample() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, proc.memory_info().rss)
                    await trio.sleep(0.02)

            start = time.perf_counter()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sample)
                info = await objects.put_object(bucket, "big.bin", body())
                done.set()
            put_s = time.perf_counter() - start
            assert info.etag == expected.hexdigest(), "ETag mismatch"

            start = time.perf_counter()
            got = hashlib.md5()
            async for data in objects.read_object(info):
                got.update(data)
            get_s = time.perf_counter() - start
            assert got.hexdigest() == info.etag, "read-back mismatch"
        finally:
            await db.close()
            bridge.stop()
    print(f"object size            {size / MiB:10.0f} MiB  (chunk size {chunk_size / MiB:.0f} MiB)")
    print(f"PUT throughput         {size / MiB / put_s:10.0f} MiB/s")
    print(f"GET throughput         {size / MiB / get_s:10.0f} MiB/s  (SHA-256 verified)")
    print(f"RSS before upload      {baseline / MiB:10.1f} MiB")
    print(f"RSS peak during upload {peak / MiB:10.1f} MiB")
    print(f"RSS growth             {(peak - baseline) / MiB:10.1f} MiB "
          f"= {(peak - baseline) / chunk_size:.1f} chunks")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--chunk-size", default="4MiB")
    args = parser.parse_args()
    trio.run(main, parse_size(args.size), parse_size(args.chunk_size))
