"""Node screens: the node list and one node's detail."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from admin_tui.screens.base import ResourceScreen, fill, up_state
from admin_tui.widgets import bar, clock, duration, human_bytes


class NodesScreen(ResourceScreen):
    """Every node; enter drills into one."""

    TITLE = "nodes"

    def compose_body(self) -> ComposeResult:
        yield DataTable(id="nodes", cursor_type="row")

    def on_mount(self) -> None:
        """Columns, then polling."""
        self.query_one("#nodes", DataTable).add_columns(
            "NODE", "ZONE", "STATE", "WEB", "S3", "LAST HEARTBEAT", "USED", "CHUNKS",
            "DISK FREE", "PARTITIONS", "IN LAYOUT")
        super().on_mount()

    async def load(self) -> Any:
        return await self.console.client.get("/status")

    def render_data(self) -> None:
        fill(self.query_one("#nodes", DataTable), [
            (n["id"], [n["id"], n["zone"], up_state(n["up"]), n["web_addr"], n["s3_addr"],
                       n["last_heartbeat"][11:19], human_bytes(n["used_bytes"]),
                       n["chunk_count"] if n["chunk_count"] is not None else "-",
                       human_bytes(n["disk_free"]), n["partitions"],
                       "yes" if n["in_layout"] else "no"])
            for n in self.data["nodes"]], self.filter_text)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter: drill into the node."""
        if event.row_key.value:
            self.app.push_screen(NodeScreen(event.row_key.value))


class NodeScreen(ResourceScreen):
    """One node: addresses, disk, chunks, request rates, workers."""

    TITLE = "node"

    def __init__(self, node_id: str) -> None:
        super().__init__()
        self.node_id = node_id
        self.TITLE = f"node {node_id}"

    def compose_body(self) -> ComposeResult:
        yield Static(id="detail")
        yield DataTable(id="workers", cursor_type="row")

    def on_mount(self) -> None:
        """Columns, then polling."""
        self.query_one("#workers", DataTable).add_columns(
            "WORKER", "STATE", "PROGRESS", "RUNS", "ERRORS", "LAST RUN", "LAST ERROR")
        super().on_mount()

    async def load(self) -> Any:
        return await self.console.client.get(f"/nodes/{self.node_id}")

    def render_data(self) -> None:
        n = self.data
        local = n["local"]
        lines = [f"[b]{n['id']}[/b]  zone {n['zone']}  ", up_state(n["up"]).markup,
                 f"\ncapacity {human_bytes(n['capacity'])}   partitions {n['partitions']}"
                 f"   last heartbeat {n['last_heartbeat']}",
                 f"\nweb {n['web_addr']}   s3 {n['s3_addr']}   sftp {n['sftp_addr']}   "
                 f"transport {n['transport_addr']}"]
        if local:
            r = local["requests"]
            lines.append(
                f"\nversion {local['version']}  pid {local['pid']}  up "
                f"{duration(local['uptime_seconds'])}   data {local['data_dir']}"
                f"\nchunks {local['chunks']['count']} ({human_bytes(local['chunks']['bytes'])})"
                f"   disk free {human_bytes(local['disk']['free'])} of "
                f"{human_bytes(local['disk']['total'])}"
                f"\nrequests {r['requests_total']} total, {r['request_rate']:.1f}/s, errors "
                f"{r['error_rate']:.1f}/s   trace subscribers {r['subscribers']}")
        else:
            lines.append("\n[red]the node does not answer: no local figures[/red]")
        self.query_one("#detail", Static).update("".join(lines))
        workers = local["workers"] if local else []
        fill(self.query_one("#workers", DataTable), [
            (w["name"], [w["name"], w["state"], bar(w.get("percent"), 10), w["runs"],
                         w["errors"], clock(w["last_finished"]) if w["last_finished"] else "-",
                         (w["last_error"] or "")[:60]])
            for w in workers], self.filter_text)
