"""``cloudstorage admin``: the operator console (Textual, its own asyncio loop).

k9s-style: ``:name`` switches resource (overview, nodes, layout, workers,
accounts, keys, trace), ``/`` filters, ``?`` helps, ``esc`` goes back,
``ctrl+p`` opens Textual's command palette.  Read-only unless started with
``--write``; destructive actions ask for confirmation.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from admin_tui.client import AdminClient
from admin_tui.screens import (
    AccountsScreen,
    KeysScreen,
    LayoutScreen,
    NodesScreen,
    OverviewScreen,
    ResourceScreen,
    TraceScreen,
    WebhooksScreen,
    WorkersScreen,
)
from admin_tui.widgets import HelpScreen

RESOURCES: dict[str, tuple[type[ResourceScreen], str]] = {
    "overview": (OverviewScreen, "nodes, capacity by zone, rates, busy workers"),
    "nodes": (NodesScreen, "every node; enter drills in"),
    "layout": (LayoutScreen, "applied vs staged layout; apply, revert, stage"),
    "workers": (WorkersScreen, "repair/scrub/GC/rebalance progress; pause, resume"),
    "accounts": (AccountsScreen, "usage and quotas; enter shows buckets"),
    "keys": (KeysScreen, "access keys; revoke"),
    "trace": (TraceScreen, "live requests of every node"),
    "webhooks": (WebhooksScreen, "every webhook and its recent deliveries"),
}
ALIASES = {
    "o": "overview", "ov": "overview", "home": "overview", "n": "nodes", "no": "nodes",
    "node": "nodes", "l": "layout", "lay": "layout", "w": "workers", "wo": "workers",
    "worker": "workers", "a": "accounts", "acc": "accounts", "account": "accounts",
    "buckets": "accounts", "b": "accounts", "k": "keys", "key": "keys", "t": "trace",
    "tr": "trace", "wh": "webhooks", "webhook": "webhooks", "hooks": "webhooks",
}

CSS = """
#title { height: 1; background: $panel; }
#problem { padding: 1 2; border: heavy $error; margin: 1 2; height: auto; }
#body { height: 1fr; }
#summary, #streams, #preview, #detail { height: auto; padding: 0 1; }
#detail { border-top: solid $primary; min-height: 3; }
DataTable { height: auto; max-height: 1fr; }
#trace, #accounts, #keys, #layout, #deliveries { height: 1fr; }
#webhooks { max-height: 12; }
#zones, #workers { max-height: 10; }
#filter, #command { dock: bottom; margin-bottom: 1; }
ConfirmScreen, PromptScreen, HelpScreen { align: center middle; }
#dialog { width: 80; height: auto; border: thick $warning; padding: 1 2; background: $surface; }
"""


class AdminApp(App[int]):
    """The console over one node's admin API."""

    TITLE = "cloudstorage admin"
    CSS = CSS
    MODES: ClassVar[dict[str, Any]] = {name: cls for name, (cls, _) in RESOURCES.items()}
    DEFAULT_MODE = "overview"
    BINDINGS: ClassVar[list[Any]] = [
        Binding("colon", "command", "Command", key_display=":"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("ctrl+c", "quit", "Quit", priority=True),
    ]

    def __init__(self, url: str, token: str, *, write: bool = False) -> None:
        super().__init__()
        self.client = AdminClient(url, token)
        self.write = write
        self._history: list[str] = []

    def run_command(self, text: str) -> None:
        """Run a ``:`` command (a resource name or alias, or ``quit``)."""
        name = text.strip().lstrip(":").lower()
        if not name:
            return
        if name in ("q", "quit", "exit", "q!"):
            self.exit(0)
            return
        name = ALIASES.get(name, name)
        if name not in RESOURCES:
            self.notify(f"unknown resource {text!r}: try {', '.join(RESOURCES)}",
                        severity="error")
            return
        self.show(name)

    def show(self, name: str) -> None:
        """Switch to resource ``name`` (remembering where we came from)."""
        if name != self.current_mode:
            self._history.append(self.current_mode)
            self.switch_mode(name)

    def go_back(self) -> None:
        """``esc``: pop a drilled-in screen, else return to the previous resource."""
        if len(self.screen_stack) > 1:
            self.pop_screen()
        elif self._history:
            self.switch_mode(self._history.pop())

    def action_command(self) -> None:
        """``:``: open the command line of the current screen."""
        screen = self.screen
        if isinstance(screen, ResourceScreen):
            screen.action_start_command()

    def action_help(self) -> None:
        """``?``: keys and commands."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """ctrl+p: every resource, plus Textual's own commands."""
        yield from super().get_system_commands(screen)
        for name, (_, help_text) in RESOURCES.items():
            yield SystemCommand(f"Go to {name}", help_text,
                                lambda name=name: self.show(name))  # type: ignore[misc]

    async def on_unmount(self) -> None:
        """Close the HTTP pool."""
        await self.client.aclose()


def resolve_target(args: argparse.Namespace) -> tuple[str, str]:
    """The URL and token the console uses, from flags, environment and files."""
    url = getattr(args, "url", None)
    token_file: Path | None = Path(args.token_file) if getattr(args, "token_file", None) else None
    config = getattr(args, "config", None)
    if config:
        from config import load_settings

        settings = load_settings(config)
        host = settings.listen.public_host or settings.listen.host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        url = url or f"http://{host}:{settings.listen.web_port}"
        token_file = token_file or settings.console_token_file()
    url = url or "http://127.0.0.1:8000"
    token = getattr(args, "token", None) or os.environ.get("CLOUDSTORAGE_ADMIN_TOKEN", "")
    if not token:
        # `cloudstorage init` (and `make run`) leave the local console's token here.
        path = token_file or Path("var/admin.token")
        if path.exists():
            token = path.read_text().strip()
    return url, token


def main(args: argparse.Namespace) -> int:
    """Entry point of ``cloudstorage admin``."""
    url, token = resolve_target(args)
    app = AdminApp(url, token, write=bool(getattr(args, "write", False)))
    result = app.run()
    return int(result or 0)
