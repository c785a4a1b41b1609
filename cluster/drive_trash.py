"""The v2-drive trash purge: a node worker deleting for good what has been in
the trash for 30 days (storage/drive_trash.py).

Every node runs it; two nodes purging the same row at once are safe (only
the transaction that deletes a row releases its chunk references).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cluster.workers import Worker
from storage.drive import Drive
from storage.drive_trash import Trash

if TYPE_CHECKING:
    from cluster.services import NodeServices

INTERVAL_SECONDS = 3600.0


def register(services: NodeServices) -> Worker | None:
    """Add the ``drive-trash`` worker to the node's registry (None without one)."""
    if services.maintenance is None:
        return None
    trash = Trash(Drive(services.db, services.objects))

    async def purge(worker: Worker) -> None:
        worker.progress["purged"] = worker.progress.get("purged", 0) + await trash.purge()

    worker = Worker("drive-trash", INTERVAL_SECONDS, purge,
                    description="v2-drive: delete trash older than 30 days")
    services.maintenance.registry.add(worker)
    return worker
