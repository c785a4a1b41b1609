"""``cloudstorage layout ...`` and ``cloudstorage workers ...`` (operator commands).

    cloudstorage layout show     [--config F]
    cloudstorage layout stage    [--config F] (--add NODE | --remove NODE | --update NODE)
                                 [--zone Z] [--capacity SIZE]
    cloudstorage layout preview  [--config F]
    cloudstorage layout apply    [--config F] --version N
    cloudstorage layout revert   [--config F]
    cloudstorage workers         [--config F] [--node ID] [list | pause W | resume W | run W]

Layout commands talk to the metadata database; worker commands talk to a
node's transport (authenticated with the cluster secret), by default the
node of the given config.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import trio

from config import ConfigError, Settings, load_settings, parse_size


@contextlib.asynccontextmanager
async def open_layouts(settings: Settings) -> AsyncIterator[Any]:
    """A short-lived database connection and a LayoutService."""
    from cluster.layout_service import LayoutService
    from storage.bridge import AsyncioBridge
    from storage.db import Database

    bridge = AsyncioBridge("cli-asyncio")
    bridge.start()
    db = Database(settings.metadata.url, bridge)
    try:
        await db.open()
        yield LayoutService(db, settings.storage.replication_factor)
    finally:
        await db.close()
        bridge.stop()


async def _layout(settings: Settings, args: argparse.Namespace) -> str:
    from cluster.layout_service import (
        LayoutConflict,
        format_layout,
        format_preview,
    )

    async with open_layouts(settings) as layouts:
        try:
            cmd = args.layout_command
            if cmd == "show":
                current, staged = await layouts.current(), await layouts.staged()
                out = format_layout(current, "current layout")
                if staged is not None:
                    out += "\n" + format_layout(staged, "staged layout")
                return out
            if cmd == "stage":
                capacity = parse_size(args.capacity) if args.capacity is not None else None
                if args.add:
                    staged = await layouts.stage_add(args.add, zone=args.zone, capacity=capacity)
                elif args.remove:
                    staged = await layouts.stage_remove(args.remove)
                else:
                    staged = await layouts.stage_update(args.update, zone=args.zone,
                                                        capacity=capacity)
                return format_layout(staged, "staged layout") + "\n" + format_preview(
                    await layouts.preview())
            if cmd == "preview":
                return format_preview(await layouts.preview())
            if cmd == "apply":
                applied = await layouts.apply(args.version)
                return format_layout(applied, "applied layout")
            if cmd == "revert":
                return "staged changes dropped" if await layouts.revert() else "nothing staged"
        except (LayoutConflict, ValueError) as exc:
            raise ConfigError(f"layout: {exc}") from None
    raise AssertionError(cmd)


def cmd_layout(args: argparse.Namespace) -> int:
    """Show, stage, preview, apply or revert a layout change."""
    settings = load_settings(args.config)
    print(trio.run(_layout, settings, args))
    return 0


async def _workers(settings: Settings, args: argparse.Namespace) -> Any:
    from cluster.transport import TransportClient, TransportError
    from storage.bridge import AsyncioBridge
    from storage.db import Database
    from storage.models import Node

    addr = f"{settings.listen.host}:{settings.listen.transport_port}"
    if args.node and args.node != settings.node.id:
        bridge = AsyncioBridge("cli-asyncio")
        bridge.start()
        db = Database(settings.metadata.url, bridge)
        try:
            await db.open(migrate=False)

            async def q() -> str | None:
                row = await Node.get_or_none(id=args.node)
                return row.transport_addr if row else None

            found = await db.run(q)
        finally:
            await db.close()
            bridge.stop()
        if found is None:
            raise ConfigError(f"workers: no node {args.node!r} is registered")
        addr = found
    client = TransportClient("cli", settings.cluster_secret(), timeout=10)
    try:
        if args.action == "list":
            return await client.control(addr, "GET", "/v1/workers")
        if not args.worker:
            raise ConfigError(f"workers {args.action}: name a worker")
        return await client.control(addr, "POST", f"/v1/workers/{args.worker}/{args.action}")
    except TransportError as exc:
        raise ConfigError(f"workers: {exc}") from None
    finally:
        await client.aclose()


def cmd_workers(args: argparse.Namespace) -> int:
    """List, pause, resume or run a node's background workers."""
    settings = load_settings(args.config)
    result = trio.run(_workers, settings, args)
    rows = result if isinstance(result, list) else [result]
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for w in rows:
        print(f"{w['name']:10} {w['state']:8} runs {w['runs']:<5} errors {w['errors']:<3} "
              f"every {w['interval']:g}s  {json.dumps(w['progress'])}"
              + (f"\n           last error: {w['last_error']}" if w["last_error"] else ""))
    return 0


def add_commands(sub: Any) -> None:
    """Register ``layout`` and ``workers`` on the main parser's subparsers."""
    layout = sub.add_parser("layout", help="show and change the cluster layout")
    lsub = layout.add_subparsers(dest="layout_command", required=True)
    for name, text in (("show", "current and staged layout"),
                       ("preview", "what applying the staged layout moves"),
                       ("revert", "drop the staged changes")):
        p = lsub.add_parser(name, help=text)
        p.add_argument("--config", "-c")
        p.set_defaults(func=cmd_layout)
    stage = lsub.add_parser("stage", help="stage adding, removing or changing a node")
    stage.add_argument("--config", "-c")
    what = stage.add_mutually_exclusive_group(required=True)
    what.add_argument("--add", metavar="NODE")
    what.add_argument("--remove", metavar="NODE")
    what.add_argument("--update", metavar="NODE")
    stage.add_argument("--zone")
    stage.add_argument("--capacity", help="e.g. 4TiB; 0 = gateway (stores nothing)")
    stage.set_defaults(func=cmd_layout)
    apply = lsub.add_parser("apply", help="apply the staged layout")
    apply.add_argument("--config", "-c")
    apply.add_argument("--version", type=int, required=True,
                       help="the staged version (current + 1); anything else is refused")
    apply.set_defaults(func=cmd_layout)

    workers = sub.add_parser("workers", help="a node's background workers")
    workers.add_argument("--config", "-c")
    workers.add_argument("--node", help="another registered node (default: this config's)")
    workers.add_argument("--json", action="store_true")
    workers.add_argument("action", nargs="?", default="list",
                         choices=["list", "pause", "resume", "run"])
    workers.add_argument("worker", nargs="?")
    workers.set_defaults(func=cmd_workers)
