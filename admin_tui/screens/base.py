"""Shared base of the console's screens: :class:`ResourceScreen` and table helpers.

Each :class:`ResourceScreen` polls the admin API on a timer, keeps the last
answer, and renders it through the current filter; a failed poll replaces
the content with a clear message (unreachable node, rejected token) and the
next successful poll brings the content back.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from admin_tui.client import ConsoleError, Unauthorized
from admin_tui.widgets import matches

if TYPE_CHECKING:
    from admin_tui.app import AdminApp


def up_state(up: bool) -> Text:
    """A node's up/down state, coloured."""
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
                    "webhooks quit)", id="command")
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
