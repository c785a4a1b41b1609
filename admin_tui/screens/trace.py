"""Trace screen: live request trace followed from every node, with a filter."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, ClassVar
from urllib.parse import urlsplit

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from admin_tui.client import ConsoleError
from admin_tui.screens.base import ResourceScreen
from admin_tui.widgets import clock, human_bytes


class TraceFilter:
    """``status:5xx proto:s3 account:bob min:100 bucket:b`` plus free text."""

    def __init__(self, text: str) -> None:
        self.terms: dict[str, str] = {}
        words = []
        for part in text.split():
            name, sep, value = part.partition(":")
            if sep and name in ("status", "proto", "protocol", "account", "min", "bucket",
                                "node", "op"):
                self.terms["protocol" if name == "proto" else name] = value.lower()
            else:
                words.append(part.lower())
        self.words = words

    def __call__(self, e: dict[str, Any]) -> bool:
        t = self.terms
        st = t.get("status", "")
        if st == "error" and e["status"] < 400:
            return False
        if st.endswith("xx") and st[:1].isdigit() and e["status"] // 100 != int(st[0]):
            return False
        if st.isdigit() and e["status"] != int(st):
            return False
        if "protocol" in t and e["protocol"] != t["protocol"]:
            return False
        if "account" in t and t["account"] not in e["account"].lower():
            return False
        if "bucket" in t and t["bucket"] != e["bucket"].lower():
            return False
        if "node" in t and t["node"] != e["node"].lower():
            return False
        if "op" in t and t["op"] not in e["operation"].lower():
            return False
        if "min" in t:
            try:
                if e["duration_ms"] < float(t["min"]):
                    return False
            except ValueError:
                pass
        blob = " ".join(str(v) for v in e.values()).lower()
        return all(w in blob for w in self.words)


class TraceScreen(ResourceScreen):
    """Every up node's live request trace, merged; filter, pause, details."""

    TITLE = "trace"
    INTERVAL = 3.0  # how often the node list is re-read (new/returning nodes)
    MAX_EVENTS = 2000
    BINDINGS: ClassVar[list[Any]] = [
        *ResourceScreen.BINDINGS,
        Binding("space", "pause", "Pause"),
        Binding("c", "clear", "Clear"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.events: deque[dict[str, Any]] = deque(maxlen=self.MAX_EVENTS)
        self.paused = False
        self.streams: dict[str, str] = {}  # node id -> state ("live", "reconnecting")
        self.dropped = 0
        self._dirty = False
        self._shown: list[dict[str, Any]] = []

    def compose_body(self) -> ComposeResult:
        yield Static(id="streams")
        yield DataTable(id="trace", cursor_type="row")
        yield Static(id="detail")

    def on_mount(self) -> None:
        """Columns, polling, and a render tick (events arrive faster than we redraw)."""
        self.query_one("#trace", DataTable).add_columns(
            "TIME", "NODE", "PROTO", "ACCOUNT", "OPERATION", "BUCKET/KEY", "STATUS", "BYTES",
            "MS")
        self.set_interval(0.25, self._render_if_dirty)
        super().on_mount()

    async def load(self) -> Any:
        status = await self.console.client.get("/status")
        for n in status["nodes"]:
            if n["up"] and n["web_addr"] and n["id"] not in self.streams:
                self.streams[n["id"]] = "connecting"
                self.run_worker(self._follow(n["id"], self._url(n["web_addr"])),
                                group="trace", exit_on_error=False)
        return status

    def _url(self, addr: str) -> str:
        host, _, port = addr.rpartition(":")
        if host in ("0.0.0.0", "::", "[::]", ""):
            host = urlsplit(self.console.client.url).hostname or "127.0.0.1"
        return f"http://{host}:{port}"

    async def _follow(self, node_id: str, url: str) -> None:
        # One stream per node, for as long as the screen lives; reconnect
        # after a failure (a restarted node comes back into the trace).
        while True:
            try:
                async for kind, data in self.console.client.trace(url):
                    if kind == "hello":
                        self.streams[node_id] = "live"
                        self._dirty = True
                    elif kind == "request":
                        self.events.append(data)
                        self._dirty = True
                    elif kind == "dropped":
                        self.dropped += int(data.get("dropped", 0))
                    elif kind == "bye":
                        break
            except ConsoleError:
                pass
            self.streams[node_id] = "reconnecting"
            self._dirty = True
            await asyncio.sleep(2.0)

    def render_data(self) -> None:
        self._dirty = True

    def _render_if_dirty(self) -> None:
        if not self._dirty or self.paused:
            return
        self._dirty = False
        streams = "  ".join(
            f"{nid} [{'green' if s == 'live' else 'yellow'}]{s}[/]"
            for nid, s in sorted(self.streams.items()))
        dropped = f"   [red]{self.dropped} events dropped (console too slow)[/]" \
            if self.dropped else ""
        self.query_one("#streams", Static).update(
            f"streams: {streams or 'none'}   events {len(self.events)}{dropped}"
            + ("   [b yellow]PAUSED[/]" if self.paused else ""))
        wanted = TraceFilter(self.filter_text)
        shown = [e for e in self.events if wanted(e)][-500:]
        self._shown = shown
        table = self.query_one("#trace", DataTable)
        at_end = not table.row_count or table.cursor_row >= table.row_count - 1
        table.clear()
        for i, e in enumerate(shown):
            target = e["bucket"] + ("/" + e["key"] if e["key"] else "")
            style = "red" if e["status"] >= 500 else ("yellow" if e["status"] >= 400 else "")
            table.add_row(clock(e["time"]), e["node"], e["protocol"], e["account"] or "-",
                          e["operation"], target[:60], Text(str(e["status"]), style=style),
                          human_bytes(e["bytes"]), f"{e['duration_ms']:.1f}", key=str(i))
        if at_end and table.row_count:
            table.move_cursor(row=table.row_count - 1)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """The detail pane follows the cursor."""
        self._detail(event.row_key.value)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter: details (and pause, so the row stays put)."""
        self.paused = True
        self._detail(event.row_key.value)

    def _detail(self, key: str | None) -> None:
        if key is None or not key.isdigit() or int(key) >= len(self._shown):
            return
        e = self._shown[int(key)]
        self.query_one("#detail", Static).update(
            f"[b]{e['operation']}[/b]  {e['method']} {e['path']}  status {e['status']}  "
            f"{e['duration_ms']:.1f} ms\nnode {e['node']}  protocol {e['protocol']}  account "
            f"{e['account'] or '-'}  key id {e['access_key'] or '-'}  client {e['remote']}\n"
            f"in {human_bytes(e['bytes_in'])}  out {human_bytes(e['bytes_out'])}  "
            f"at {clock(e['time'])}")

    def action_pause(self) -> None:
        """``space``: freeze / unfreeze the display (events keep being collected)."""
        self.paused = not self.paused
        self._dirty = True
        if self.paused:
            self.query_one("#streams", Static).update("[b yellow]PAUSED[/] (space resumes)")
        else:
            self._render_if_dirty()

    def action_clear(self) -> None:
        """``c``: forget collected events."""
        self.events.clear()
        self._dirty = True
