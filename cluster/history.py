"""The Time Machine pruning worker of one node (see storage/versions.py).

Writes trim the history of the key they write; this pass removes history
that aged out of its account's ``max_age_days`` on keys nobody writes.  Any
node may run it at any time: each removal releases exactly the rows its own
DELETE returned.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cluster.workers import Worker
from config import Settings
from storage import sql, versions
from storage.db import Database

BATCH = 500
MAX_ROUNDS = 20


def default_retention(settings: Settings) -> versions.Retention:
    """The ``[versions]`` defaults."""
    return versions.Retention(settings.versions.max_versions, settings.versions.max_age_days)


def history_worker(settings: Settings, db: Database) -> Worker:
    """The ``versions`` worker: prune aged Time Machine history."""
    retention = default_retention(settings)

    async def run_pass(worker: Worker) -> None:
        removed = 0
        for _ in range(MAX_ROUNDS):
            await worker.checkpoint()
            n = await sql.retry(lambda: db.write(
                versions.prune_aged_steps, datetime.now(UTC), retention, BATCH))
            removed += n
            if n < BATCH:
                break
        worker.progress["removed"] = worker.progress.get("removed", 0) + removed

    return Worker("versions", settings.versions.prune_interval, run_pass,
                  description="prune Time Machine history past its max age")
