"""The URL-import worker of a node (v1-pro ``POST /api/v1/import``).

It claims import tasks from the shared database (storage/imports.py) and
streams each file from its URL into the account's bucket through the
SSRF-safe client (storage/outbound.py): the address is checked when it
connects, so a URL that resolves to loopback or a private network is
refused however it was accepted.  While a task runs, its lease is renewed
every third of its length, with the bytes received so far; a renewal that
fails means the task was cancelled (or taken over), and the download stops
before anything is stored.  A node killed mid-import stops renewing: the
lease runs out and any node claims the task again, from the start.

The worker is one entry of the node's worker registry ("imports"), so the
console shows it and can pause it.  A pass keeps claiming tasks while there
are any, up to ``v1pro.import_concurrency`` at once, and ends when none is
left running.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator

import trio

from cluster.services import NodeServices
from cluster.workers import Worker
from config import Settings
from storage import errors, events, outbound
from storage.buckets import BucketService
from storage.imports import COMPLETED, FAILED, ImportTaskInfo, ImportTasks
from storage.objects import ObjectService

log = logging.getLogger(__name__)


class _Lost(Exception):
    """The task stopped being this node's (cancelled, or claimed elsewhere)."""


class ImportWorker:
    """Runs the import tasks this node claims."""

    def __init__(self, settings: Settings, tasks: ImportTasks, buckets: BucketService,
                 objects: ObjectService) -> None:
        self._settings = settings
        self._tasks = tasks
        self._buckets = buckets
        self._objects = objects
        self._node = settings.node.id
        cfg = settings.v1pro
        self._lease = cfg.import_lease_seconds
        self._max_attempts = max(cfg.import_max_attempts, 1)
        self._concurrency = max(cfg.import_concurrency, 1)
        # Imports may be as large as an upload, not as small as a webhook answer.
        self._policy = dataclasses.replace(
            outbound.OutboundPolicy.from_settings(settings),
            max_response_bytes=settings.accounts.rest_max_upload)
        self.active = 0
        self.worker = Worker("imports", cfg.import_poll_seconds, self.run_pass,
                             description="URL imports of the v1-pro API")

    async def run_pass(self, worker: Worker) -> None:
        """Claim and run tasks until none is left (or the worker is paused)."""
        async with trio.open_nursery() as nursery:
            while True:
                while self.active < self._concurrency and not worker.paused:
                    task = await self._tasks.claim(self._node, self._lease, self._max_attempts)
                    if task is None:
                        break
                    self.active += 1
                    nursery.start_soon(self._run_one, task)
                worker.progress.update(active=self.active)
                if self.active == 0:
                    return
                # New tasks are looked for while these run.
                await trio.sleep(self.worker.interval)

    async def _run_one(self, task: ImportTaskInfo) -> None:
        try:
            await self._import(task)
        finally:
            self.active -= 1

    async def _import(self, task: ImportTaskInfo) -> None:
        progress: dict = {"done": 0, "total": None, "lost": False}
        error: str | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._keep_lease, task, progress, nursery.cancel_scope)
            try:
                await self._download(task, progress)
            except _Lost:
                progress["lost"] = True
            except errors.StorageError as exc:
                error = exc.message
            except Exception as exc:  # a task must end failed, never stay running
                error = f"the import failed: {type(exc).__name__}"
                log.exception("import %s failed", task.id)
            nursery.cancel_scope.cancel()
        if progress["lost"]:  # cancelled by its owner, or no longer ours
            return
        await self._tasks.finish(task.id, self._node, FAILED if error else COMPLETED,
                                 error or "", progress["done"])

    async def _keep_lease(self, task: ImportTaskInfo, progress: dict,
                          scope: trio.CancelScope) -> None:
        while True:
            await trio.sleep(self._lease / 3)
            if not await self._tasks.renew(task.id, self._node, self._lease,
                                           progress["done"], progress["total"]):
                # The download stops where it is: nothing is stored.
                progress["lost"] = True
                scope.cancel()
                return

    async def _download(self, task: ImportTaskInfo, progress: dict) -> None:
        bucket = await self._buckets.get(task.bucket)
        async with outbound.open(task.url, self._policy) as response:
            if response.status != 200:
                raise outbound.OutboundFailed(
                    f"the URL answered HTTP {response.status}, not 200")
            length = response.headers.get("content-length", "")
            progress["total"] = int(length) if length.isdigit() else None

            async def body() -> AsyncIterator[bytes]:
                async for piece in response.iter_bytes():
                    progress["done"] += len(piece)
                    yield piece
                # Last look before the commit: a task cancelled meanwhile
                # must not store its file.
                if not await self._tasks.renew(task.id, self._node, self._lease,
                                               progress["done"], progress["total"]):
                    raise _Lost()

            given = response.headers.get("content-type", "").split(";")[0].strip()
            with events.origin("v1pro"):
                await self._objects.put_object(
                    bucket, task.key, body(),
                    content_type=given if "/" in given else "application/octet-stream")


def register(services: NodeServices) -> ImportWorker | None:
    """Add the import worker to the node's worker registry (None without one)."""
    if services.maintenance is None:
        return None
    worker = ImportWorker(services.settings, ImportTasks(services.db), services.buckets,
                          services.objects)
    services.maintenance.registry.add(worker.worker)
    return worker
