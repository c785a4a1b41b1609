"""Layout staging, preview, apply and revert in the metadata database (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cluster.layout_service import LayoutConflict, LayoutService
from storage.bridge import AsyncioBridge
from storage.db import Database
from storage.models import Node


async def _register(db: Database, node_id: str, zone: str = "dc1") -> None:
    async def q() -> None:
        now = datetime.now(UTC)
        await Node.create(id=node_id, zone=zone, capacity=10**12, transport_addr="x:1",
                          started_at=now, last_heartbeat=now)

    await db.run(q)


@pytest.mark.trio
async def test_bootstrap_stage_preview_apply_revert(db_url: str) -> None:
    bridge = AsyncioBridge()
    bridge.start()
    db = Database(db_url, bridge)
    try:
        await db.open()
        layouts = LayoutService(db, 3)
        await _register(db, "n1")
        await _register(db, "n2")
        # Waits for the expected number of nodes, then creates version 1 once.
        assert await layouts.bootstrap(3, 60) is None
        await _register(db, "n3")
        first = await layouts.bootstrap(3, 60)
        assert first is not None and first.version == 1 and first.replication_factor == 3
        assert (await layouts.bootstrap(3, 60)) == first
        await _register(db, "n4", "dc2")
        staged = await layouts.stage_add("n4")
        assert staged.version == 2 and (await layouts.current()).version == 1
        preview = await layouts.preview()
        # The only node of a second zone must hold one replica of every partition.
        assert preview["new_version"] == 2 and preview["moved_replicas"] == 256
        assert {n for m in preview["moves"] for n in m["added"]} == {"n4"}
        with pytest.raises(LayoutConflict, match="already"):
            await layouts.stage_add("n4")
        assert await layouts.revert() and await layouts.staged() is None
        with pytest.raises(LayoutConflict, match="not staged"):
            await layouts.apply(2)
        await layouts.stage_add("n4")
        await layouts.stage_update("n1", capacity=0)  # gateway: owns nothing
        with pytest.raises(LayoutConflict, match="only 2"):
            await layouts.apply(3)
        applied = await layouts.apply(2)
        assert applied.partitions_of("n1") == () and applied.partitions_of("n4")
        with pytest.raises(LayoutConflict, match="only 3"):
            await layouts.apply(2)
        current, previous = await layouts.current_and_previous()
        assert (current.version, previous.version) == (2, 1)
        await layouts.stage_remove("n2")
        assert (await layouts.staged()).version == 3
        assert await layouts.history() == [1, 2]
    finally:
        await db.close()
        bridge.stop()
