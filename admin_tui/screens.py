"""The console's screens: one per resource, k9s style.

Each :class:`ResourceScreen` polls the admin API on a timer, keeps the last
answer, and renders it through the current filter; a failed poll replaces
the content with a clear message (unreachable node, rejected token) and the
next successful poll brings the content back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from admin_tui.client import ConsoleError, Unauthorized
from admin_tui.widgets import (
    ConfirmScreen,
    PromptScreen,
    bar,
    clock,
    duration,
    human_bytes,
    matches,
)

if TYPE_CHECKING:
    from admin_tui.app import AdminApp


def _state(up: bool) -> Text:
    return Text("up", style="bold green") if up else Text("DOWN", style="bold red")


class ResourceScreen(Screen[None]):
    """Base: title line, problem panel, body, filter/command inputs, footer."""

    TITLE = "resource"
    INTERVAL = 1.5
    BINDINGS: ClassVar[list[Any]] = [
        Binding("slash", "start_filter", "Filter"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.data: Any = None
        self.filter_text = ""
        self.problem: ConsoleError | None = None
        self._busy = False
        self.loads = 0  # successful polls (tests wait on it)

    @property
    def console(self) -> AdminApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield Static(id="problem")
        with Vertical(id="body"):
            yield from self.compose_body()
        yield Input(placeholder="filter (esc clears)", id="filter")
        yield Input(placeholder=":command  (overview nodes layout workers accounts keys trace "
                    "quit)", id="command")
        yield Footer()

    def compose_body(self) -> ComposeResult:
        """The screen's own widgets."""
        yield from ()

    def on_mount(self) -> None:
        """Start polling."""
        self.query_one("#filter").display = False
        self.query_one("#command").display = False
        self.query_one("#problem").display = False
        self._title()
        self.set_interval(self.INTERVAL, self.poll)
        self.poll()

    def _title(self) -> None:
        app = self.console
        mode = "[b green]write[/]" if app.write else "[dim]read-only[/]"
        state = ("[b red]✖ disconnected[/]" if self.problem else "[green]● connected[/]")
        flt = f"   filter: [b]{self.filter_text}[/]" if self.filter_text else ""
        self.query_one("#title", Static).update(
            f"[b reverse] {self.TITLE} [/]  {app.client.url}  {state}  {mode}{flt}"
            "   [dim]? help  : command  / filter[/]")

    def poll(self) -> None:
        """Refresh from the API unless the previous refresh is still running."""
        if not self._busy:
            self._busy = True
            self.run_worker(self._poll(), group="poll", exit_on_error=False)

    async def _poll(self) -> None:
        try:
            self.data = await self.load()
            self.loads += 1
            self.show_problem(None)
            self.render_data()
        except ConsoleError as exc:
            self.show_problem(exc)
        finally:
            self._busy = False

    async def load(self) -> Any:
        """Fetch this screen's data."""
        return None

    def render_data(self) -> None:
        """Show ``self.data`` through ``self.filter_text``."""

    def show_problem(self, exc: ConsoleError | None) -> None:
        """Replace the body with a message while the API fails."""
        changed = (exc is None) != (self.problem is None)
        self.problem = exc
        panel = self.query_one("#problem", Static)
        body = self.query_one("#body")
        if exc is None:
            panel.display = False
            body.display = True
        else:
            hint = ("Check the token (--token, $CLOUDSTORAGE_ADMIN_TOKEN or --token-file)."
                    if isinstance(exc, Unauthorized) else
                    "Retrying every few seconds; the screen comes back when the node does.")
            panel.update(f"[b red]{exc.title}[/]\n\n{exc}\n\n[dim]{hint}[/]")
            panel.display = True
            body.display = False
        if changed:
            self._title()

    # -- keys ---------------------------------------------------------------

    def action_start_filter(self) -> None:
        """``/``: type a filter."""
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_start_command(self) -> None:
        """``:``: type a command."""
        box = self.query_one("#command", Input)
        box.value = ""
        box.display = True
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        """Live filtering."""
        if event.input.id == "filter":
            self.filter_text = event.value.strip()
            self._title()
            if self.data is not None:
                self.render_data()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the filter keeps it; in the command line runs it."""
        if event.input.id == "command":
            event.input.display = False
            self.console.run_command(event.value)
        elif event.input.id == "filter":
            event.input.display = False
            self.focus_main()

    def focus_main(self) -> None:
        """Focus the main table, if any."""
        tables = self.query(DataTable)
        if tables:
            tables.first().focus()

    def action_back(self) -> None:
        """``esc``: close an input, else leave this screen."""
        for box_id in ("command", "filter"):
            box = self.query_one(f"#{box_id}", Input)
            if box.display:
                box.display = False
                if box_id == "filter":
                    box.value = ""
                self.focus_main()
                return
        self.console.go_back()

    def need_write(self) -> bool:
        """True if changes are allowed; otherwise tell the operator why not."""
        if not self.console.write:
            self.notify("read-only console: start it with --write to change anything",
                        severity="warning")
            return False
        return True

    async def call(self, coro: Any, done: str) -> Any:
        """Run an API change, report the outcome, refresh."""
        try:
            result = await coro
        except ConsoleError as exc:
            self.notify(str(exc), title=exc.title, severity="error", timeout=8)
            return None
        self.notify(done)
        self.poll()
        return result


def fill(table: DataTable, rows: list[tuple[str, list[Any]]], filter_text: str) -> None:
    """Replace ``table``'s rows (key, cells), keeping the cursor on the same key."""
    keep = None
    if table.row_count and table.cursor_row is not None:
        try:
            keep = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        except Exception:
            keep = None
    table.clear()
    for key, cells in rows:
        if matches(filter_text, cells):
            table.add_row(*cells, key=key)
    if keep is not None:
        with contextlib.suppress(Exception):
            table.move_cursor(row=table.get_row_index(keep))


def selected_key(table: DataTable) -> str | None:
    """The key of the row under the cursor."""
    if not table.row_count:
        return None
    try:
        return table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
    except Exception:
        return None


# -- overview -----------------------------------------------------------------------


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
            (n["id"], [n["id"], n["zone"], _state(n["up"]), human_bytes(n["capacity"]),
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


# -- nodes --------------------------------------------------------------------------


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
            (n["id"], [n["id"], n["zone"], _state(n["up"]), n["web_addr"], n["s3_addr"],
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
        lines = [f"[b]{n['id']}[/b]  zone {n['zone']}  ", _state(n["up"]).markup,
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


# -- layout -------------------------------------------------------------------------


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
            state = _state(nodes[nid]["up"]) if nid in nodes else Text("unregistered")
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


# -- workers ------------------------------------------------------------------------


class WorkersScreen(ResourceScreen):
    """Every node's workers with progress bars and ETA; pause/resume/run."""

    TITLE = "workers"
    INTERVAL = 1.0
    BINDINGS: ClassVar[list[Any]] = [
        *ResourceScreen.BINDINGS,
        Binding("p", "act('pause')", "Pause"),
        Binding("r", "act('resume')", "Resume"),
        Binding("t", "act('run')", "Run now"),
    ]

    def __init__(self) -> None:
        super().__init__()
        # (node, worker) -> recent (time, done) samples, for the ETA.
        self._samples: dict[str, deque[tuple[float, float]]] = {}

    def compose_body(self) -> ComposeResult:
        yield DataTable(id="workers", cursor_type="row")

    def on_mount(self) -> None:
        """Columns, then polling."""
        self.query_one("#workers", DataTable).add_columns(
            "NODE", "WORKER", "STATE", "PROGRESS", "ETA", "DONE", "REMAINING", "RUNS",
            "ERRORS", "LAST ERROR")
        super().on_mount()

    async def load(self) -> Any:
        return await self.console.client.get("/workers")

    def _eta(self, key: str, progress: dict[str, Any]) -> tuple[str, str, str]:
        for unit in ("chunks", "bytes", "items"):
            done, left = progress.get(f"{unit}_done"), progress.get(f"{unit}_remaining")
            if isinstance(done, int | float) and isinstance(left, int | float):
                samples = self._samples.setdefault(key, deque(maxlen=30))
                now = time.monotonic()
                if samples and done < samples[-1][1]:
                    samples.clear()  # a new pass started
                samples.append((now, float(done)))
                eta = "-"
                if left <= 0:
                    eta = "done"
                elif len(samples) >= 2 and samples[-1][0] > samples[0][0]:
                    rate = (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])
                    eta = duration(left / rate) if rate > 0 else "stalled"
                fmt = human_bytes if unit == "bytes" else str
                return eta, fmt(done), fmt(left)
        return "-", "-", "-"

    def render_data(self) -> None:
        rows = []
        for w in self.data["workers"]:
            key = f"{w['node']}/{w['name']}"
            eta, done, left = self._eta(key, w.get("progress") or {})
            state = Text(w["state"], style={"paused": "yellow", "running": "bold cyan"}.get(
                w["state"], ""))
            rows.append((key, [w["node"], w["name"], state, bar(w.get("percent")), eta, done,
                               left, w["runs"], w["errors"], (w["last_error"] or "")[:50]]))
        fill(self.query_one("#workers", DataTable), rows, self.filter_text)

    def action_act(self, action: str) -> None:
        """Pause, resume or run the selected worker."""
        if not self.need_write():
            return
        key = selected_key(self.query_one("#workers", DataTable))
        if key is None:
            return
        node, name = key.split("/", 1)
        self.run_worker(self.call(self.console.client.post(f"/workers/{node}/{name}/{action}"),
                                  f"{name} on {node}: {action}"), exit_on_error=False)


# -- accounts -----------------------------------------------------------------------


_SORTS = ["email", "used_bytes", "object_count", "quota_bytes", "created_at", "status", "plan"]


class AccountsScreen(ResourceScreen):
    """Accounts with usage: sortable, filterable; quota/plan edits, suspend."""

    TITLE = "accounts"
    INTERVAL = 2.0
    BINDINGS: ClassVar[list[Any]] = [
        *ResourceScreen.BINDINGS,
        Binding("o", "sort", "Sort"),
        Binding("e", "quota", "Quota"),
        Binding("n", "plan", "Plan"),
        Binding("u", "suspend", "Suspend/reactivate"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.sort = "email"

    def compose_body(self) -> ComposeResult:
        yield DataTable(id="accounts", cursor_type="row")

    def on_mount(self) -> None:
        """Columns, then polling."""
        self.query_one("#accounts", DataTable).add_columns(
            "EMAIL", "PLAN", "STATUS", "USED", "QUOTA", "USED %", "OBJECTS", "BUCKETS", "KEYS",
            "ADMIN")
        super().on_mount()

    def _title(self) -> None:
        self.TITLE = f"accounts (sort: {getattr(self, 'sort', 'email')})"
        super()._title()

    async def load(self) -> Any:
        return await self.console.client.get("/accounts", sort=self.sort)

    def render_data(self) -> None:
        fill(self.query_one("#accounts", DataTable), [
            (a["email"], [a["email"], a["plan"],
                          Text(a["status"], style="red" if a["status"] != "active" else ""),
                          human_bytes(a["used_bytes"]), human_bytes(a["quota_bytes"]),
                          f"{a['quota_used_percent']:.1f}%", a["object_count"],
                          a["bucket_count"], a["key_count"], "yes" if a["is_admin"] else ""])
            for a in self.data["accounts"]], self.filter_text)

    def _selected(self) -> dict[str, Any] | None:
        key = selected_key(self.query_one("#accounts", DataTable))
        return next((a for a in (self.data or {}).get("accounts", []) if a["email"] == key), None)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter: the account's buckets and keys."""
        if event.row_key.value:
            self.app.push_screen(AccountScreen(event.row_key.value))

    def action_sort(self) -> None:
        """``o``: next sort order."""
        self.sort = _SORTS[(_SORTS.index(self.sort) + 1) % len(_SORTS)]
        self._title()
        self.poll()

    def action_quota(self) -> None:
        """``e``: edit the selected account's quota."""
        acct = self._selected()
        if acct is None or not self.need_write():
            return

        async def answered(text: str | None) -> None:
            if text:
                await self.call(self.console.client.patch(
                    f"/accounts/{acct['id']}", {"quota_bytes": text}),
                    f"quota of {acct['email']} set to {text}")

        self.app.push_screen(PromptScreen(f"Quota for {acct['email']} (e.g. 50GiB):",
                                          human_bytes(acct["quota_bytes"]).replace(" ", "")),
                             answered)

    def action_plan(self) -> None:
        """``n``: change the selected account's plan."""
        acct = self._selected()
        if acct is None or not self.need_write():
            return

        async def answered(text: str | None) -> None:
            if text:
                await self.call(self.console.client.patch(
                    f"/accounts/{acct['id']}", {"plan": text}), f"{acct['email']}: plan {text}")

        self.app.push_screen(PromptScreen(f"Plan for {acct['email']}:", acct["plan"]), answered)

    def action_suspend(self) -> None:
        """``u``: suspend or reactivate, after confirmation."""
        acct = self._selected()
        if acct is None or not self.need_write():
            return
        target = "active" if acct["status"] == "suspended" else "suspended"
        verb = "Reactivate" if target == "active" else "Suspend"

        async def answered(ok: bool | None) -> None:
            if ok:
                await self.call(self.console.client.patch(
                    f"/accounts/{acct['id']}", {"status": target}),
                    f"{acct['email']} is now {target}")

        extra = "\nIts keys stop working at once." if target == "suspended" else ""
        self.app.push_screen(ConfirmScreen(f"{verb} {acct['email']}?{extra}"), answered)


class AccountScreen(ResourceScreen):
    """One account: its buckets (objects, bytes, versions) and keys."""

    TITLE = "account"
    INTERVAL = 2.0

    def __init__(self, ref: str) -> None:
        super().__init__()
        self.ref = ref
        self.TITLE = f"account {ref}"

    def compose_body(self) -> ComposeResult:
        yield Static(id="summary")
        yield DataTable(id="buckets", cursor_type="row")
        yield Static("[b]keys[/b]")
        yield DataTable(id="keys", cursor_type="row")

    def on_mount(self) -> None:
        """Columns, then polling."""
        self.query_one("#buckets", DataTable).add_columns(
            "BUCKET", "OBJECTS", "BYTES", "VERSIONS", "VERSION BYTES", "DELETE MARKERS",
            "VERSIONING", "REGION")
        self.query_one("#keys", DataTable).add_columns("ACCESS KEY", "NAME", "CREATED")
        super().on_mount()

    async def load(self) -> Any:
        client = self.console.client
        return {"buckets": await client.get(f"/accounts/{self.ref}/buckets"),
                "keys": await client.get(f"/accounts/{self.ref}/keys")}

    def render_data(self) -> None:
        a = self.data["buckets"]["account"]
        self.query_one("#summary", Static).update(
            f"[b]{a['email']}[/b]  plan {a['plan']}  status {a['status']}  used "
            f"{human_bytes(a['used_bytes'])} of {human_bytes(a['quota_bytes'])} "
            f"({a['quota_used_percent']:.1f}%)  objects {a['object_count']}")
        fill(self.query_one("#buckets", DataTable), [
            (b["name"], [b["name"], b["objects"], human_bytes(b["bytes"]), b["versions"],
                         human_bytes(b["version_bytes"]), b["delete_markers"], b["versioning"],
                         b["region"]])
            for b in self.data["buckets"]["buckets"]], self.filter_text)
        fill(self.query_one("#keys", DataTable), [
            (k["access_key"], [k["access_key"], k["name"], k["created_at"][:19]])
            for k in self.data["keys"]["keys"]], "")


# -- keys ---------------------------------------------------------------------------


class KeysScreen(ResourceScreen):
    """Every access key (never secrets); revoke."""

    TITLE = "keys"
    INTERVAL = 3.0
    BINDINGS: ClassVar[list[Any]] = [*ResourceScreen.BINDINGS,
                                     Binding("d", "revoke", "Revoke")]

    def compose_body(self) -> ComposeResult:
        yield DataTable(id="keys", cursor_type="row")

    def on_mount(self) -> None:
        """Columns, then polling."""
        self.query_one("#keys", DataTable).add_columns(
            "ACCESS KEY", "ACCOUNT", "ACCOUNT STATUS", "NAME", "CREATED", "LAST USED")
        super().on_mount()

    async def load(self) -> Any:
        return await self.console.client.get("/keys")

    def render_data(self) -> None:
        fill(self.query_one("#keys", DataTable), [
            (k["access_key"], [k["access_key"], k["account_email"], k["account_status"],
                               k["name"], k["created_at"][:19],
                               (k["last_used_at"] or "-")[:19]])
            for k in self.data["keys"]], self.filter_text)

    def action_revoke(self) -> None:
        """``d``: revoke the selected key after confirmation."""
        key = selected_key(self.query_one("#keys", DataTable))
        if key is None or not self.need_write():
            return
        owner = next((k["account_email"] for k in self.data["keys"] if k["access_key"] == key),
                     "")

        async def answered(ok: bool | None) -> None:
            if ok:
                await self.call(self.console.client.delete(f"/keys/{key}"), f"{key} revoked")

        self.app.push_screen(ConfirmScreen(
            f"Revoke access key {key} of {owner}?\nClients using it fail at once."), answered)


# -- trace --------------------------------------------------------------------------


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
