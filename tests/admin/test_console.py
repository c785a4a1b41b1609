"""The Textual console driven with pilot key presses against real node processes."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import anyio
import boto3
import pytest
from botocore.config import Config as BotoConfig
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from admin_tui.app import AdminApp
from admin_tui.screens import (
    AccountScreen,
    AccountsScreen,
    KeysScreen,
    LayoutScreen,
    NodeScreen,
    NodesScreen,
    OverviewScreen,
    TraceScreen,
    WorkersScreen,
)
from admin_tui.widgets import ConfirmScreen, HelpScreen
from tests.admin.conftest import console_token
from tests.harness import free_port

SIZE = (160, 50)


def _s3(node):
    return boto3.client(
        "s3", endpoint_url=node.s3_url, region_name=node.region,
        aws_access_key_id=node.access_key, aws_secret_access_key=node.secret_key,
        config=BotoConfig(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )


async def until(pilot: Pilot, check: Callable[[], Any], what: str, deadline: float = 15) -> Any:
    """Let the app run until ``check()`` is truthy (polling with a deadline)."""
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await pilot.pause(0.1)


def rows(app: AdminApp, table_id: str) -> list[list[str]]:
    """The visible cells of a table on the current screen, as text."""
    table = app.screen.query_one(f"#{table_id}", DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


def text(app: AdminApp, widget_id: str) -> str:
    """The rendered text of a Static on the current screen."""
    return str(app.screen.query_one(f"#{widget_id}", Static).render())


async def command(pilot: Pilot, name: str) -> None:
    """Type ``:name`` and Enter."""
    await pilot.press("colon", *name, "enter")


@pytest.mark.asyncio
async def test_every_screen_by_keyboard(running_node):
    s3 = _s3(running_node)
    s3.create_bucket(Bucket="photos")
    s3.put_object(Bucket="photos", Key="cat.jpg", Body=b"m" * 12345)
    s3.put_object(Bucket="photos", Key="dog.jpg", Body=b"w" * 20000)
    app = AdminApp(running_node.web_url, console_token(running_node))
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, OverviewScreen)
        nodes = await until(pilot, lambda: rows(app, "nodes"), "overview rows")
        assert nodes[0][:3] == ["node1", "dc1", "up"]
        assert "2 objects" in text(app, "summary") or "[b]2[/b]" in text(app, "summary") \
            or " 2 objects" in text(app, "summary").replace("  ", " ")

        await command(pilot, "nodes")
        assert isinstance(app.screen, NodesScreen)
        await until(pilot, lambda: rows(app, "nodes"), "nodes rows")
        await pilot.press("enter")  # drill into node1
        assert isinstance(app.screen, NodeScreen)
        await until(pilot, lambda: "chunks" in text(app, "detail"), "node detail")
        await pilot.press("escape")
        assert isinstance(app.screen, NodesScreen)

        await command(pilot, "accounts")
        assert isinstance(app.screen, AccountsScreen)
        accounts = await until(pilot, lambda: rows(app, "accounts"), "accounts rows")
        assert accounts[0][0] == "admin@localhost"
        await pilot.press("enter")
        assert isinstance(app.screen, AccountScreen)
        buckets = await until(
            pilot, lambda: {r[0]: r for r in rows(app, "buckets")}.get("photos"), "photos row")
        assert buckets[1] == "2" and buckets[2] == "31.6 KiB"  # 32345 bytes
        await pilot.press("escape")

        await command(pilot, "keys")
        assert isinstance(app.screen, KeysScreen)
        keys = await until(pilot, lambda: rows(app, "keys"), "key rows")
        assert keys[0][0] == running_node.access_key and keys[0][1] == "admin@localhost"

        await command(pilot, "layout")
        assert isinstance(app.screen, LayoutScreen)
        await until(pilot, lambda: rows(app, "layout") and "applied v1" in text(
            app, "summary").replace("[b]", "").replace("[/b]", ""), "layout v1")
        assert "applied v1" in text(app, "summary").replace("[b]", "").replace("[/b]", "")

        await command(pilot, "workers")
        assert isinstance(app.screen, WorkersScreen)
        workers = await until(pilot, lambda: rows(app, "workers"), "worker rows")
        assert {"rebalance", "repair", "scrub", "gc"} <= {w[1] for w in workers}
        await pilot.press("p")  # read-only console: refused, nothing paused
        await pilot.pause(0.3)
        assert all(w[2] != "paused" for w in rows(app, "workers"))

        await command(pilot, "trace")
        assert isinstance(app.screen, TraceScreen)

        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, TraceScreen)
        # esc at a resource's root goes back through the visited resources.
        await pilot.press("escape")
        assert isinstance(app.screen, WorkersScreen)


@pytest.mark.asyncio
async def test_filter_and_quota_edit_with_write_access(running_node):
    running_node.create_account("zed@example.com")
    app = AdminApp(running_node.web_url, console_token(running_node), write=True)
    async with app.run_test(size=SIZE) as pilot:
        await command(pilot, "accounts")
        await until(pilot, lambda: len(rows(app, "accounts")) == 2, "two accounts")
        await pilot.press("slash", *"zed", "enter")
        assert [r[0] for r in rows(app, "accounts")] == ["zed@example.com"]
        await pilot.press("e")  # edit quota of the selected (only) row
        await pilot.press(*"3GiB", "enter")
        await until(pilot, lambda: rows(app, "accounts")[0][4] == "3.0 GiB", "new quota")
        await pilot.press("u")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: rows(app, "accounts")[0][2] == "suspended", "suspended")


@pytest.mark.asyncio
async def test_trace_shows_uploads_live(running_node):
    app = AdminApp(running_node.web_url, console_token(running_node))
    async with app.run_test(size=SIZE) as pilot:
        await command(pilot, "trace")
        screen = app.screen
        assert isinstance(screen, TraceScreen)
        await until(pilot, lambda: screen.streams.get("node1") == "live", "stream live")
        s3 = _s3(running_node)
        await anyio.to_thread.run_sync(
            lambda: s3.put_object(Bucket="default", Key="live.txt", Body=b"x" * 4096))
        row = await until(pilot, lambda: next(
            (r for r in rows(app, "trace") if r[4] == "PutObject"), None), "PutObject row")
        assert row[1] == "node1" and row[2] == "s3" and row[3] == "admin@localhost"
        assert row[5] == "default/live.txt" and row[6] == "200"
        # Filter by status: the upload disappears, a 404 shows.
        await anyio.to_thread.run_sync(lambda: _missing(s3))
        await pilot.press("slash", *"status:4xx", "enter")
        # The table is redrawn with the filter on a later refresh: poll until
        # only the 404 is left, not just until some row shows.
        await until(pilot, lambda: {r[6] for r in rows(app, "trace")} == {"404"},
                    "only the 404 row")
        await pilot.press("enter")
        assert "GetObject" in text(app, "detail")


def _missing(s3) -> None:
    with contextlib.suppress(Exception):
        s3.get_object(Bucket="default", Key="nope")


@pytest.mark.asyncio
async def test_unreachable_node_and_wrong_token_show_a_clear_screen(running_node):
    app = AdminApp(f"http://127.0.0.1:{free_port()}", "whatever")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.screen.problem is not None, "problem shown")
        assert "Node unreachable" in text(app, "problem")
        assert not app.screen.query_one("#body").display
    app = AdminApp(running_node.web_url, "csadm_wrong")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.screen.problem is not None, "problem shown")
        assert "Admin token rejected" in text(app, "problem")


@pytest.mark.asyncio
async def test_reconnects_when_the_node_comes_back(running_node):
    app = AdminApp(running_node.web_url, console_token(running_node))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: rows(app, "nodes"), "overview rows")
        await anyio.to_thread.run_sync(running_node.stop)
        await until(pilot, lambda: app.screen.problem is not None, "unreachable shown")
        await anyio.to_thread.run_sync(running_node.start)
        await until(pilot, lambda: app.screen.problem is None and rows(app, "nodes"),
                    "back after restart", deadline=30)


@pytest.mark.asyncio
async def test_node_down_and_layout_apply(two_nodes):
    first, second = two_nodes
    app = AdminApp(first.web_url, console_token(first), write=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: {r[0]: r[2] for r in rows(app, "nodes")} ==
                    {"node1": "up", "node2": "up"}, "both up")
        await command(pilot, "layout")
        screen = app.screen
        await until(pilot, lambda: screen.data and screen.data["layout"]["staged"],
                    "node2 staged", deadline=20)
        await until(pilot, lambda: "preview" in text(app, "preview"), "preview")
        version = screen.data["layout"]["staged"]["version"]
        await pilot.press("a")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: screen.data["layout"]["current"]["version"] == version
                    and not screen.data["layout"]["staged"], "applied")
        applied = {r[0]: r for r in rows(app, "layout")}
        assert int(applied["node2"][4]) > 0
        await command(pilot, "workers")
        await until(pilot, lambda: any(r[0] == "node2" and r[1] == "rebalance"
                                       for r in rows(app, "workers")), "node2 workers")
        await command(pilot, "overview")
        await anyio.to_thread.run_sync(second.kill)
        # down_after_seconds is 3 in the harness: well within the deadline.
        await until(pilot, lambda: {r[0]: r[2] for r in rows(app, "nodes")}.get("node2")
                    == "DOWN", "node2 down", deadline=20)
