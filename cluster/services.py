"""The storage core of one node, wired together (the composition root's product)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import trio

from cluster.delivery import WebhookDelivery
from cluster.history import default_retention, history_worker
from cluster.layout_service import LayoutService
from cluster.maintenance import Maintenance
from cluster.placement import NodeSpec, partition_of
from cluster.replication import ClusterView, ReplicatedBlobStore
from cluster.transport import TransportClient, TransportServer
from config import Settings
from storage.accounts import AccountService
from storage.authz import Authorizer
from storage.blobs import BlobStore
from storage.bridge import AsyncioBridge
from storage.buckets import BucketService
from storage.chunkstore import LocalChunkStore
from storage.core import StorageCore
from storage.crypto import SecretBox
from storage.db import Database
from storage.errors import ServiceUnavailable
from storage.events import EventBus
from storage.objects import ObjectService
from storage.sessions import SessionService
from storage.sftp_users import SftpUserService
from storage.teams import TeamService
from storage.trace import TraceBus


@dataclass
class NodeServices(StorageCore):
    """The storage core plus this node's parts of the replicated blob layer
    (the admin control, the CLI and tests use them; protocols see only the
    :class:`StorageCore`)."""

    local_chunks: LocalChunkStore | None = None
    layouts: LayoutService | None = None
    view: ClusterView | None = None
    replicated: ReplicatedBlobStore | None = None
    maintenance: Maintenance | None = None
    transport: TransportServer | None = None


# Bounds the health check's own database round trip: a server that hangs
# must make the node not ready, not make the probe hang.
HEALTH_DB_TIMEOUT = 3.0


async def unavailable_parts(services: NodeServices) -> dict[str, str]:
    """What keeps this node from serving writes: ``{part: reason}``, empty when ready.

    Parts: ``database`` (the metadata database does not answer) and
    ``write quorum`` (too few nodes up to store new data).
    """
    try:
        with trio.fail_after(HEALTH_DB_TIMEOUT):
            await services.db.ping()
            if services.view is not None:
                await services.view.refresh()
    except trio.TooSlowError:
        return {"database": f"no answer within {HEALTH_DB_TIMEOUT:.0f} s"}
    # Health is unauthenticated: name what is down, not the database's address.
    except ServiceUnavailable as exc:
        return {"database": exc.message}
    except Exception as exc:  # any other failure of the round trip
        return {"database": f"the metadata database failed: {type(exc).__name__}"}
    if services.view is not None:
        problem = services.view.write_quorum_problem(services.settings.storage.write_quorum)
        if problem is not None:
            return {"write quorum": problem}
    return {}


def build_services(settings: Settings, bridge: AsyncioBridge, db: Database) -> NodeServices:
    """Wire the storage core for ``settings`` (no I/O beyond creating folders)."""
    io_limiter = trio.CapacityLimiter(settings.storage.io_threads)
    local = LocalChunkStore(settings.node.data_dir, io_limiter)
    s, c = settings.storage, settings.cluster
    layouts = LayoutService(db, s.replication_factor)
    implicit = (NodeSpec(settings.node.id, settings.node.zone, settings.node.capacity)
                if c.bootstrap_expect == 1 and settings.node.capacity > 0 else None)
    view = ClusterView(db, layouts, c.down_after_seconds, implicit_self=implicit)
    client = TransportClient(settings.node.id, settings.cluster_secret(),
                             timeout=c.transport_timeout_seconds)
    replicated = ReplicatedBlobStore(
        settings.node.id, view, client, local,
        write_quorum=s.write_quorum, straggler_seconds=c.straggler_seconds,
    )
    blobs: BlobStore = replicated
    maintenance = Maintenance(settings, db, layouts, view, replicated, local)
    transport = TransportServer(settings.node.id, settings.cluster_secret(), local,
                                control=maintenance.control, partition_of=partition_of)
    bus = EventBus()
    accounts = AccountService(
        db, SecretBox(settings.cluster_secret()),
        default_quota=settings.accounts.default_quota,
        max_access_keys=settings.accounts.max_access_keys, events=bus,
    )
    buckets = BucketService(db, max_buckets=settings.accounts.max_buckets, events=bus)
    services = NodeServices(
        settings=settings, bridge=bridge, db=db, accounts=accounts,
        buckets=buckets,
        # Team roles: read from the shared database on every check, so a
        # removal takes effect on the next request on every node.
        authz=Authorizer(buckets, roles=TeamService(db).role_of),
        objects=ObjectService(
            db, blobs, chunk_size=settings.storage.chunk_size,
            inline_threshold=settings.storage.inline_threshold,
            hash_limiter=trio.CapacityLimiter(max(2, settings.storage.io_threads // 2)),
            gc_grace=settings.storage.gc_grace_seconds, events=bus,
            retention=default_retention(settings),
        ),
        local_chunks=local, blobs=blobs, layouts=layouts, view=view, replicated=replicated,
        maintenance=maintenance, transport=transport,
        sessions=SessionService(db, ttl_seconds=settings.accounts.session_ttl_seconds),
        sftp_users=SftpUserService(db),
        trace=TraceBus(settings.node.id), events=bus,
    )
    services.unavailable_parts = functools.partial(unavailable_parts, services)
    # Webhook delivery and Time Machine pruning run with the blob layer's
    # workers (shown and paused alike in the console).
    maintenance.registry.add(WebhookDelivery(settings, db, bus).worker)
    maintenance.registry.add(history_worker(settings, db))
    return services
