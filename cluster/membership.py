"""Node membership: register in the metadata database and heartbeat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import trio

from config import Settings
from storage.db import Database
from storage.errors import ServiceUnavailable
from storage.models import Node


def _addr(host: str, port: int) -> str:
    return f"{host}:{port}"


async def register(db: Database, settings: Settings) -> None:
    """Insert or refresh this node's row."""
    s = settings
    now = datetime.now(UTC)
    fields = {
        "zone": s.node.zone, "capacity": s.node.capacity,
        "transport_addr": _addr(s.listen.host, s.listen.transport_port),
        "web_addr": _addr(s.listen.host, s.listen.web_port),
        "s3_addr": _addr(s.listen.host, s.listen.s3_port),
        "sftp_addr": _addr(s.listen.host, s.listen.sftp_port),
        "started_at": now, "last_heartbeat": now,
    }

    async def upsert() -> None:
        await Node.update_or_create(defaults=fields, id=s.node.id)

    await db.run(upsert)


async def heartbeat(db: Database, settings: Settings) -> None:
    """Refresh ``last_heartbeat`` forever; a failed beat is retried next time."""
    node_id = settings.node.id

    async def beat() -> None:
        await Node.filter(id=node_id).update(last_heartbeat=datetime.now(UTC))

    while True:
        await trio.sleep(settings.cluster.heartbeat_seconds)
        try:
            await db.run(beat)
        except ServiceUnavailable:
            pass  # the database is away: logged (rate-limited) by the database layer
        except Exception as exc:  # say so, keep going: the next beat may succeed
            print(f"[{node_id}] heartbeat failed: {exc}", flush=True)


async def node_states(db: Database, down_after: float) -> list[dict]:
    """Every registered node with ``up`` computed from its last heartbeat."""

    async def q() -> list[dict]:
        return await Node.all().order_by("id").values()

    rows = await db.run(q)
    cutoff = datetime.now(UTC) - timedelta(seconds=down_after)
    for row in rows:
        row["up"] = row["last_heartbeat"] >= cutoff
    return rows
