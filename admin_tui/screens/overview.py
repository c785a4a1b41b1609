"""Overview screen: nodes up/down, capacity and usage by zone, busy workers."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from admin_tui.screens.base import ResourceScreen, fill, up_state
from admin_tui.widgets import bar, human_bytes


class OverviewScreen(ResourceScreen):
    """Nodes up/down, capacity and usage by zone, rates, busy/failing workers."""

    TITLE = "overview"

    def compose_body(self) -> ComposeResult:
        yield Static(id="summary")
        yield DataTable(id="nodes", cursor_type="row")
        yield DataTable(id="zones", cursor_type="row")
        yield Static("[b]busy or failing workers[/b]", id="workers-title")
        yield DataTable(id="workers", cursor_type="row")

    def on_mount(self) -> None:
        """Columns, then polling."""
        self.query_one("#nodes", DataTable).add_columns(
            "NODE", "ZONE", "STATE", "CAPACITY", "USED", "CHUNKS", "PARTITIONS", "REQ/S",
            "ERR/S", "VERSION")
        self.query_one("#zones", DataTable).add_columns(
            "ZONE", "NODES", "UP", "CAPACITY", "USED", "USED %")
        self.query_one("#workers", DataTable).add_columns(
            "NODE", "WORKER", "STATE", "PROGRESS", "ERRORS", "LAST ERROR")
        super().on_mount()

    async def load(self) -> Any:
        return await self.console.client.get("/status")

    def render_data(self) -> None:
        s = self.data
        t = s["totals"]
        lay = s["layout"]
        staged = f"  staged v{lay['staged_version']}" if lay["staged_version"] else ""
        self.query_one("#summary", Static).update(
            f"nodes [b]{t['nodes_up']}/{t['nodes']}[/b] up   capacity "
            f"[b]{human_bytes(t['capacity'])}[/b]   stored [b]{human_bytes(t['used_bytes'])}"
            f"[/b] in [b]{t['objects']}[/b] objects, {t['buckets']} buckets, "
            f"{t['accounts']} accounts   chunks {t['chunks']}\n"
            f"requests [b]{t['request_rate']:.1f}/s[/b]   errors "
            f"[b]{t['error_rate']:.1f}/s[/b]   layout [b]v{lay['version']}[/b]{staged}")
        fill(self.query_one("#nodes", DataTable), [
            (n["id"], [n["id"], n["zone"], up_state(n["up"]), human_bytes(n["capacity"]),
                       human_bytes(n["used_bytes"]), n["chunk_count"] if n["chunk_count"]
                       is not None else "-", n["partitions"], f"{n['request_rate']:.1f}",
                       f"{n['error_rate']:.1f}", n["version"] or "-"])
            for n in s["nodes"]], self.filter_text)
        fill(self.query_one("#zones", DataTable), [
            (z["zone"], [z["zone"], z["nodes"], f"{z['up']}/{z['nodes']}",
                         human_bytes(z["capacity"]), human_bytes(z["used_bytes"]),
                         f"{100 * z['used_bytes'] / z['capacity']:.2f}%" if z["capacity"] else "-"])
            for z in s["zones"]], "")
        rows = []
        for n in s["nodes"]:
            for w in n["workers"]:
                if w["state"] != "idle" or w["last_error"]:
                    rows.append((f"{n['id']}/{w['name']}", [
                        n["id"], w["name"], w["state"], bar(w.get("percent"), 10),
                        w["errors"], (w["last_error"] or "")[:60]]))
        fill(self.query_one("#workers", DataTable), rows, "")
