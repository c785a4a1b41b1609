"""Layout screen: applied vs staged layout; apply, revert, stage."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from admin_tui.screens.base import ResourceScreen, fill, selected_key, up_state
from admin_tui.widgets import ConfirmScreen, PromptScreen, human_bytes


class LayoutScreen(ResourceScreen):
    """Applied vs staged layout, partitions per node, preview; apply/revert/stage."""

    TITLE = "layout"
    INTERVAL = 2.0
    BINDINGS: ClassVar[list[Any]] = [
        *ResourceScreen.BINDINGS,
        Binding("a", "apply", "Apply staged"),
        Binding("r", "revert", "Revert staged"),
        Binding("s", "stage", "Stage change"),
    ]

    def compose_body(self) -> ComposeResult:
        yield Static(id="summary")
        yield DataTable(id="layout", cursor_type="row")
        yield Static(id="preview")

    def on_mount(self) -> None:
        """Columns, then polling."""
        self.query_one("#layout", DataTable).add_columns(
            "NODE", "ZONE", "STATE", "CAPACITY", "APPLIED", "STAGED", "CHANGE")
        super().on_mount()

    async def load(self) -> Any:
        client = self.console.client
        layout, status = await client.get("/layout"), await client.get("/status")
        preview = await client.get("/layout/preview", moves=0) if layout["staged"] else None
        return {"layout": layout, "status": status, "preview": preview}

    def render_data(self) -> None:
        cur, staged = self.data["layout"]["current"], self.data["layout"]["staged"]
        preview = self.data["preview"]
        nodes = {n["id"]: n for n in self.data["status"]["nodes"]}
        applied = {n["id"]: n for n in cur["nodes"]} if cur else {}
        new = {n["id"]: n for n in staged["nodes"]} if staged else {}
        head = (f"applied [b]v{cur['version']}[/b]: {cur['partitions']} partitions, "
                f"replication factor {cur['replication_factor']}, {len(applied)} nodes"
                if cur else "applied: [b]none yet[/b]")
        head += (f"\nstaged  [b yellow]v{staged['version']}[/b yellow]: {len(new)} nodes — "
                 "[b]a[/b] apply  [b]r[/b] revert" if staged else
                 "\nstaged  none — [b]s[/b] stage a change (add/remove/update a node)")
        self.query_one("#summary", Static).update(head)
        rows = []
        for nid in sorted(set(nodes) | set(applied) | set(new)):
            info = nodes.get(nid) or applied.get(nid) or new[nid]
            a = applied.get(nid, {}).get("partitions", 0)
            b = new.get(nid, {}).get("partitions", 0) if staged else a
            change = "" if not staged or a == b else f"{b - a:+d}"
            state = up_state(nodes[nid]["up"]) if nid in nodes else Text("unregistered")
            rows.append((nid, [nid, info["zone"], state, human_bytes(info["capacity"]),
                               a if nid in applied else "-",
                               (b if nid in new else "-") if staged else "",
                               Text(change, style="yellow") if change else ""]))
        fill(self.query_one("#layout", DataTable), rows, self.filter_text)
        if preview:
            self.query_one("#preview", Static).update(
                f"preview: applying v{preview['new_version']} over v{preview['old_version']} "
                f"changes [b]{preview['partitions_changed']}[/b] of {preview['partitions']} "
                f"partitions and copies [b]{preview['moved_replicas']}[/b] replicas "
                "(old owners keep serving until the new ones have the data)")
        else:
            self.query_one("#preview", Static).update("")

    def action_apply(self) -> None:
        """``a``: apply the staged layout after confirmation."""
        if not self.need_write() or not self.data:
            return
        staged, preview = self.data["layout"]["staged"], self.data["preview"]
        if not staged:
            self.notify("nothing is staged", severity="warning")
            return
        version = staged["version"]
        moved = (f"\n{preview['partitions_changed']} partitions change, "
                 f"{preview['moved_replicas']} replicas will be copied." if preview else "")

        async def answered(ok: bool | None) -> None:
            if ok:
                await self.call(self.console.client.post("/layout/apply", {"version": version}),
                                f"layout v{version} applied: rebalancing starts")

        self.app.push_screen(ConfirmScreen(f"Apply layout version {version}?{moved}"), answered)

    def action_revert(self) -> None:
        """``r``: drop the staged layout after confirmation."""
        if not self.need_write() or not self.data or not self.data["layout"]["staged"]:
            return

        async def answered(ok: bool | None) -> None:
            if ok:
                await self.call(self.console.client.post("/layout/revert"), "staged layout dropped")

        self.app.push_screen(ConfirmScreen("Drop the staged layout changes?"), answered)

    def action_stage(self) -> None:
        """``s``: stage ``add NODE [ZONE] [CAPACITY]``, ``remove NODE`` or ``update ...``."""
        if not self.need_write():
            return
        picked = selected_key(self.query_one("#layout", DataTable)) or ""
        cur = self.data["layout"]["current"] if self.data else None
        in_layout = cur and any(n["id"] == picked for n in cur["nodes"])
        suggestion = f"{'update' if in_layout else 'add'} {picked}".strip()

        async def answered(text: str | None) -> None:
            if not text:
                return
            parts = text.split()
            if parts[0] not in ("add", "remove", "update") or len(parts) < 2:
                self.notify("use: add NODE [ZONE] [CAPACITY] | remove NODE | "
                            "update NODE [ZONE] [CAPACITY]", severity="error")
                return
            body: dict[str, Any] = {"action": parts[0], "node": parts[1]}
            if len(parts) > 2:
                body["zone"] = parts[2]
            if len(parts) > 3:
                body["capacity"] = parts[3]
            await self.call(self.console.client.post("/layout/stage", body),
                            f"staged: {text} — review the preview, then press a")

        self.app.push_screen(PromptScreen(
            "Stage a layout change:", suggestion,
            "add NODE [ZONE] [CAPACITY] | remove NODE | update NODE [ZONE] [CAPACITY]"),
            answered)
