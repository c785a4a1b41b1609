"""The blob interface the storage core sees: content-addressed chunks.

A chunk's id is the lowercase hex SHA-256 of its bytes, so chunks are
immutable, deduplicated and self-verifying.  The object service only talks to
a :class:`BlobStore`; a node wires in either one local store or the
replicated layer over many.
"""

from __future__ import annotations

import hashlib
import re
from typing import Protocol

from storage.errors import ServiceUnavailable

_CHUNK_ID = re.compile(r"^[0-9a-f]{64}$")


class ChunkError(Exception):
    """Base class of chunk-level failures."""

    def __init__(self, chunk_id: str, detail: str = "") -> None:
        super().__init__(f"chunk {chunk_id}: {detail}" if detail else f"chunk {chunk_id}")
        self.chunk_id = chunk_id


class ChunkNotFound(ChunkError):
    """No copy of the chunk could be found."""


class ChunkUnavailable(ChunkNotFound, ServiceUnavailable):
    """No good copy was found and some nodes that may hold one are unreachable.

    A ChunkNotFound to the background workers (repair skips it as before),
    and a ServiceUnavailable to the protocols: the client gets 503 and
    retries, since the data is likely fine once the nodes are back.
    """

    def __init__(self, chunk_id: str, detail: str = "") -> None:
        super().__init__(chunk_id, detail)
        self.cause = "chunk holders unreachable"
        self.message = "The nodes holding this data are unreachable; please retry later."


class ChunkCorrupt(ChunkError):
    """A stored copy does not hash to its id (and was not served)."""


class ChunkWriteFailed(ChunkError):
    """The chunk could not be stored durably (enough times)."""


def chunk_id_of(data: bytes | bytearray | memoryview) -> str:
    """The id a chunk with these bytes gets."""
    return hashlib.sha256(data).hexdigest()


def check_chunk_id(chunk_id: str) -> str:
    """Return ``chunk_id`` if it is well formed, else raise ValueError.

    Ids become file names, so this is also what keeps a peer from naming a
    path outside the store.
    """
    if not _CHUNK_ID.match(chunk_id):
        raise ValueError(f"malformed chunk id {chunk_id[:80]!r}")
    return chunk_id


class BlobStore(Protocol):
    """Where chunk bytes live."""

    async def put_chunk(self, chunk_id: str, data: bytes) -> None:
        """Store ``data`` under ``chunk_id`` durably (idempotent)."""

    async def get_chunk(self, chunk_id: str) -> bytes:
        """Return verified bytes, or raise ChunkNotFound / ChunkCorrupt."""

    async def has_chunk(self, chunk_id: str) -> bool:
        """Whether a copy is present (not verified)."""

    async def delete_chunk(self, chunk_id: str) -> None:
        """Remove the chunk if present."""
