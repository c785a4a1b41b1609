"""The storage core as the protocols see it: one object handed to every adapter.

The composition root (``cluster/node.py``) builds it; protocols receive it and
never import ``cluster/``.  It holds the protocol-agnostic services only: what
the replicated blob layer, the layout and the workers are is the cluster's
business, reached by the admin API through its own small interface
(``protocols/admin/control.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from config import Settings
from storage.accounts import AccountService
from storage.authz import Authorizer
from storage.blobs import BlobStore
from storage.bridge import AsyncioBridge
from storage.buckets import BucketService
from storage.db import Database
from storage.events import EventBus
from storage.node_locks import NodeLocks
from storage.objects import ObjectService
from storage.sessions import SessionService
from storage.sftp_users import SftpUserService
from storage.trace import TraceBus


async def _always_ready() -> dict[str, str]:
    return {}


@dataclass
class StorageCore:
    """Everything protocol adapters may use; built once per node process."""

    settings: Settings
    bridge: AsyncioBridge
    db: Database
    accounts: AccountService
    buckets: BucketService
    objects: ObjectService
    blobs: BlobStore
    sessions: SessionService
    sftp_users: SftpUserService
    # May this caller do this to this bucket: every protocol asks it.
    authz: Authorizer
    # Live request trace of this node (admin API stream, request rates).
    trace: TraceBus = field(default_factory=lambda: TraceBus(""))
    # Committed changes, as they happen on this node (the durable copy is the
    # events table).
    events: EventBus = field(default_factory=EventBus)
    # What keeps this node from serving writes, ``{part: reason}`` (empty when
    # ready): /health asks it.
    unavailable_parts: Callable[[], Awaitable[dict[str, str]]] = _always_ready
    # Locks across this node's worker processes (no-ops in a node of one).
    node_locks: NodeLocks = field(default_factory=NodeLocks)
