"""The v2-drive workers of a node.

* ``drive-trash``: deletes for good what has been in the trash for 30 days
  (storage/drive_trash.py).  Two nodes purging the same row at once are
  safe: only the transaction that deletes a row releases its references.
* v2-drive webhooks: their payload format is registered with the webhooks
  worker (storage/drive_webhooks.py).
* ``drive-search``: keeps the full-text index current from the events
  outbox (storage/search.py); replays are harmless, each key is indexed from
  its current state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cluster.workers import Worker
from storage import drive_webhooks, webhooks
from storage.drive import Drive
from storage.drive_trash import Trash
from storage.search import SearchIndex

if TYPE_CHECKING:
    from cluster.services import NodeServices

TRASH_INTERVAL = 3600.0
SEARCH_INTERVAL = 5.0


def register(services: NodeServices) -> list[Worker]:
    """Add the v2-drive workers to the node's registry (none without one)."""
    drive = Drive(services.db, services.objects)
    # v2-drive webhooks are delivered by the webhooks worker in the document's format.
    webhooks.FORMATS[drive_webhooks.PREFIX] = drive_webhooks.Renderer(drive,
                                                                       services.buckets).render
    if services.maintenance is None:
        return []
    trash = Trash(drive)
    index = SearchIndex(services.db, services.objects, services.buckets)

    async def purge(worker: Worker) -> None:
        worker.progress["purged"] = worker.progress.get("purged", 0) + await trash.purge()

    async def catch_up(worker: Worker) -> None:
        worker.progress["events"] = worker.progress.get("events", 0) + await index.catch_up()

    workers = [Worker("drive-trash", TRASH_INTERVAL, purge,
                      description="v2-drive: delete trash older than 30 days"),
               Worker("drive-search", SEARCH_INTERVAL, catch_up,
                      description="v2-drive: index changes for full-text search")]
    for worker in workers:
        services.maintenance.registry.add(worker)
    return workers
