"""Shared pieces of the replication tests: a cluster of real node processes and
an in-process *gateway* (ObjectService over a ReplicatedBlobStore with no
local disk) that talks to those processes' transports.

The S3 endpoint is being built in parallel, so uploads go through the
gateway: the bytes still travel over the real node-to-node transport to real
processes, which is what these tests are about.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import trio

from tests.harness import NodeProcess, prepare_node

CHUNK = 64 * 1024


def node_extra(expect: int, *, grace: int = 3600, scrub: float = 3600, interval: float = 1.0,
               write_quorum: int = 2) -> str:
    """Config lines for fast, test-sized background work (appended under [cluster])."""
    return f"""bootstrap_expect = {expect}
layout_refresh_seconds = 0.3
straggler_seconds = 0.5
transport_timeout_seconds = 10

[storage]
chunk_size = "64KiB"
write_quorum = {write_quorum}
gc_grace_seconds = {grace}

[workers]
repair_interval = {interval}
rebalance_interval = {interval}
scrub_interval = {scrub}
gc_interval = {interval}
"""


def start_nodes(
    root: Path, db_url: str, specs: list[tuple[str, str]], extra: str, *, workers: int = 2,
) -> list[NodeProcess]:
    """Prepare and start one node per (node id, zone), of ``workers``
    processes each; all share DB and secret."""
    nodes = []
    for node_id, zone in specs:
        node = prepare_node(root / node_id, db_url, node_id, secret_file=root / "cluster.secret",
                            zone=zone, extra=extra, workers=workers)
        nodes.append(node)
    for node in nodes:
        node.start()
    return nodes


def stop_nodes(nodes: list[NodeProcess]) -> None:
    """Stop every node still running (kill if it will not stop)."""
    for node in nodes:
        with contextlib.suppress(AssertionError):
            node.stop()


def chunk_path(node: NodeProcess, cid: str) -> Path:
    """Where a node keeps a chunk (LocalChunkStore's layout)."""
    return node.data_dir / "chunks" / cid[:2] / cid[2:4] / cid


def holders(nodes: list[NodeProcess], cid: str) -> set[str]:
    """Ids of the nodes whose disk holds the chunk."""
    return {n.node_id for n in nodes if chunk_path(n, cid).exists()}


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], deadline: float, what: str
) -> None:
    """Poll ``check`` until true; fail with ``what`` after ``deadline`` seconds."""
    end = trio.current_time() + deadline
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if trio.current_time() > end:
            raise AssertionError(f"not within {deadline:.0f} s: {what}")
        await trio.sleep(0.2)


@dataclass
class Gateway:
    """An in-process storage core whose blobs live on the cluster's nodes."""

    db: object
    layouts: object
    view: object
    store: object
    objects: object
    bucket: object

    async def put(self, key: str, data: bytes):
        """Upload ``data`` as ``key`` in the ``default`` bucket."""

        async def body() -> AsyncIterator[bytes]:
            yield data

        return await self.objects.put_object(self.bucket, key, body())

    async def get(self, key: str) -> bytes:
        """Read ``key`` back (latest version)."""
        info = await self.objects.head_object(self.bucket, key)
        return await self.objects.get_bytes(info)


@contextlib.asynccontextmanager
async def open_gateway(db_url: str, secret_file: Path) -> AsyncIterator[Gateway]:
    """A gateway over the metadata DB ``db_url`` with the cluster's secret."""
    from cluster.layout_service import LayoutService
    from cluster.replication import ClusterView, ReplicatedBlobStore
    from cluster.transport import TransportClient
    from storage.bridge import AsyncioBridge
    from storage.buckets import BucketService
    from storage.db import Database
    from storage.objects import ObjectService

    bridge = AsyncioBridge("gateway-asyncio")
    bridge.start()
    db = Database(db_url, bridge)
    try:
        await db.open(migrate=False)
        layouts = LayoutService(db, 3)
        view = ClusterView(db, layouts, down_after=3)
        client = TransportClient("test-gateway", secret_file.read_text().strip().encode(),
                                 timeout=10)
        store = ReplicatedBlobStore("test-gateway", view, client, None, write_quorum=2,
                                    straggler_seconds=0.5)
        objects = ObjectService(db, store, chunk_size=CHUNK, inline_threshold=1024)
        bucket = await BucketService(db).get("default")
        yield Gateway(db, layouts, view, store, objects, bucket)
        await client.aclose()
    finally:
        await db.close()
        bridge.stop()


async def wait_layout(gw: Gateway, version: int, deadline: float = 30) -> None:
    """Until the gateway sees applied layout ``version``."""

    async def ready() -> bool:
        await gw.view.refresh()
        return gw.view.layout is not None and gw.view.layout.version >= version

    await eventually(ready, deadline, f"layout version {version}")


def payload(i: int, size: int) -> bytes:
    """Distinct, incompressible test bytes."""
    return os.urandom(size - 8) + i.to_bytes(8, "big")
