"""The ``image-cache`` worker: keeps the image-transform cache within its bounds.

Each pass evicts the least recently used results until the cache is within
``images.cache_max_bytes`` and ``images.cache_max_entries``, releasing their
chunks for GC (storage/image_cache.py).  Every node runs it; the eviction is
one ``DELETE ... RETURNING`` per batch, so passes on several nodes never
release an entry twice.
"""

from __future__ import annotations

from cluster.services import NodeServices
from cluster.workers import Worker
from storage.image_cache import ImageCache


def register(services: NodeServices) -> Worker | None:
    """Add the worker to the node's registry (None on a node without workers)."""
    if services.maintenance is None:
        return None
    s = services.settings
    cache = ImageCache(services.db, services.blobs, chunk_size=s.storage.chunk_size,
                       max_bytes=s.images.cache_max_bytes,
                       max_entries=s.images.cache_max_entries)

    async def collect_pass(worker: Worker) -> None:
        evicted, freed = await cache.collect()
        entries, size = await cache.usage()
        worker.progress.update(evicted=evicted, bytes_freed=freed, entries=entries,
                               bytes=size)

    worker = Worker("image-cache", s.images.cache_interval, collect_pass,
                    description="evict least recently used image transforms over the bound")
    services.maintenance.registry.add(worker)
    return worker
