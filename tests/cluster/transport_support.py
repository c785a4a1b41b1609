"""A live transport server for the transport's tests."""

from __future__ import annotations

from pathlib import Path

import trio

from cluster.transport import TransportServer
from storage.chunkstore import LocalChunkStore

SECRET = b"transport-test-secret-0123456789"


async def serve_transport(nursery: trio.Nursery, root: Path) -> tuple[str, LocalChunkStore]:
    """Serve node "n1"'s chunk store under ``root`` on a free loopback port;
    its address ("host:port") and the store."""
    local = LocalChunkStore(root)
    listeners = await nursery.start(TransportServer("n1", SECRET, local).serve, "127.0.0.1", 0)
    return f"127.0.0.1:{listeners[0].socket.getsockname()[1]}", local
