"""The transport client's connection pool against a real transport server on
loopback: stale keep-alive connections, dead peers and full disks are told
apart and never surface as a bare "Broken pipe"."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from cluster.transport import (
    IDLE_TIMEOUT,
    POOL_IDLE_SECONDS,
    PeerDiskFull,
    PeerUnreachable,
    TransportClient,
    TransportServer,
)
from storage.chunkstore import LocalChunkStore
from tests.cluster.replication_support import eventually

SECRET = b"transport-pool-secret-0123456789"


async def _serve(
    nursery: trio.Nursery, root: Path, **kwargs: float
) -> tuple[str, TransportServer]:
    server = TransportServer("n1", SECRET, LocalChunkStore(root), **kwargs)
    listeners = await nursery.start(server.serve, "127.0.0.1", 0)
    return f"127.0.0.1:{listeners[0].socket.getsockname()[1]}", server


def _chunk(size: int) -> tuple[str, bytes]:
    data = os.urandom(size)
    return hashlib.sha256(data).hexdigest(), data


def test_the_pool_gives_up_connections_before_the_server_closes_them() -> None:
    assert POOL_IDLE_SECONDS < IDLE_TIMEOUT / 2


@pytest.mark.trio
async def test_connections_the_server_closed_while_pooled_are_not_reused(
    tmp_path: Path,
) -> None:
    async with trio.open_nursery() as nursery:
        addr, server = await _serve(nursery, tmp_path, idle_timeout=0.2)
        client = TransportClient("n2", SECRET)
        # Several concurrent requests leave several connections in the pool.
        async with trio.open_nursery() as burst:
            for _ in range(4):
                burst.start_soon(client.list_chunks, addr)
        assert server.accepted == 4
        # The server's idle timeout closes every one of them.
        await eventually(lambda: server.connections == 0, 10, "idle connections closed")
        # Big bodies (written into a closed socket: EPIPE) and small ones work.
        for size in (2 * 1024 * 1024, 10):
            cid, data = _chunk(size)
            await client.put_chunk(addr, cid, data)
            assert await client.get_chunk(addr, cid) == data
        await client.aclose()
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_connections_idle_longer_than_the_pool_bound_are_replaced(
    tmp_path: Path,
) -> None:
    async with trio.open_nursery() as nursery:
        addr, server = await _serve(nursery, tmp_path)
        reusing = TransportClient("n2", SECRET)
        for _ in range(3):
            await reusing.list_chunks(addr)
        assert server.accepted == 1
        # A bound of zero: every pooled connection is already too old.
        never = TransportClient("n2", SECRET, pool_idle_seconds=0.0)
        for _ in range(3):
            await never.list_chunks(addr)
        assert server.accepted == 4
        # The discarded connections were closed, not leaked.
        await eventually(lambda: server.connections == 2, 10, "old connections closed")
        await reusing.aclose()
        await never.aclose()
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_node_that_went_away_is_reported_unreachable(tmp_path: Path) -> None:
    client = TransportClient("n2", SECRET)
    async with trio.open_nursery() as nursery:
        addr, _ = await _serve(nursery, tmp_path)
        await client.list_chunks(addr)  # a pooled connection to it
        nursery.cancel_scope.cancel()  # the node stops: its sockets close
    cid, data = _chunk(1024)
    with pytest.raises(PeerUnreachable, match="unreachable: connection refused"):
        await client.put_chunk(addr, cid, data)
    await client.aclose()


@contextlib.contextmanager
def _tiny_disk(path: Path, size: str) -> Iterator[Path]:
    """A real file system of ``size`` (tmpfs); skips where mounting is not allowed."""
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small file system: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.mark.trio
async def test_a_full_disk_on_the_receiver_is_reported_as_disk_full(tmp_path: Path) -> None:
    with _tiny_disk(tmp_path / "disk", "256k") as disk:
        async with trio.open_nursery() as nursery:
            addr, server = await _serve(nursery, disk)
            client = TransportClient("n2", SECRET)
            cid, data = _chunk(1024 * 1024)
            with pytest.raises(PeerDiskFull, match="disk full on node n1"):
                await client.put_chunk(addr, cid, data)
            # The connection stays usable: the next small chunk fits.
            cid, data = _chunk(1000)
            await client.put_chunk(addr, cid, data)
            assert server.accepted == 1
            await client.aclose()
            nursery.cancel_scope.cancel()


async def _one_exchange_per_connection(
    stream: trio.SocketStream, upstream_addr: str
) -> None:
    """A proxy connection that carries one exchange, then dies on the next
    request: a server closing a connection just as the client reuses it (a
    race no check before reuse can see)."""
    host, _, port = upstream_addr.rpartition(":")
    answered = trio.Event()
    async with stream, await trio.open_tcp_stream(host, int(port)) as upstream:

        async def back() -> None:
            async for data in upstream:
                await stream.send_all(data)
                answered.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(back)
            async for data in stream:
                if answered.is_set():
                    break  # the second request: drop the connection unanswered
                await upstream.send_all(data)
            nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_reused_connection_that_fails_is_retried_on_a_fresh_one(
    tmp_path: Path,
) -> None:
    async with trio.open_nursery() as nursery:
        upstream, _ = await _serve(nursery, tmp_path)
        listeners = await nursery.start(
            trio.serve_tcp, lambda s: _one_exchange_per_connection(s, upstream), 0)
        addr = f"127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        client = TransportClient("n2", SECRET)
        async with trio.open_nursery() as burst:
            for _ in range(3):
                burst.start_soon(client.list_chunks, addr)
        # Every pooled connection dies when reused; the retry must not take one.
        for _ in range(3):
            assert await client.list_chunks(addr) == []
        await client.aclose()
        nursery.cancel_scope.cancel()
