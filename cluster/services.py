"""The storage core of one node, wired together (the composition root's product)."""

from __future__ import annotations

from dataclasses import dataclass

import trio

from config import Settings
from storage.accounts import AccountService
from storage.blobs import BlobStore
from storage.bridge import AsyncioBridge
from storage.buckets import BucketService
from storage.chunkstore import LocalChunkStore
from storage.crypto import SecretBox
from storage.db import Database
from storage.objects import ObjectService


@dataclass
class NodeServices:
    """Everything protocol adapters may use; built once per node process."""

    settings: Settings
    bridge: AsyncioBridge
    db: Database
    accounts: AccountService
    buckets: BucketService
    objects: ObjectService
    local_chunks: LocalChunkStore
    blobs: BlobStore


def build_services(settings: Settings, bridge: AsyncioBridge, db: Database) -> NodeServices:
    """Wire the storage core for ``settings`` (no I/O beyond creating folders)."""
    io_limiter = trio.CapacityLimiter(settings.storage.io_threads)
    local = LocalChunkStore(settings.node.data_dir, io_limiter)
    blobs: BlobStore = local
    accounts = AccountService(
        db, SecretBox(settings.cluster_secret()),
        default_quota=settings.accounts.default_quota,
        max_access_keys=settings.accounts.max_access_keys,
    )
    return NodeServices(
        settings=settings, bridge=bridge, db=db, accounts=accounts,
        buckets=BucketService(db, max_buckets=settings.accounts.max_buckets),
        objects=ObjectService(
            db, blobs, chunk_size=settings.storage.chunk_size,
            inline_threshold=settings.storage.inline_threshold,
            hash_limiter=trio.CapacityLimiter(max(2, settings.storage.io_threads // 2)),
        ),
        local_chunks=local, blobs=blobs,
    )
