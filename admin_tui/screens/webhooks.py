"""Webhooks screen: every webhook of the cluster and the delivery log of the
selected one (read-only; account owners manage their webhooks themselves)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable

from admin_tui.screens.base import ResourceScreen, fill, selected_key

_STATUS_STYLE = {"succeeded": "green", "failed": "bold red", "pending": "yellow",
                 "skipped": "dim"}


def _when(iso: str | None) -> str:
    """``2026-12-05T11:44:19.123+00:00`` -> ``2026-12-05 11:44:19`` (UTC, as stored)."""
    return iso[:19].replace("T", " ") if iso else "-"


def _status(status: str | None) -> Text:
    return Text(status or "-", style=_STATUS_STYLE.get(status or "", ""))


def _code(code: int | None) -> str:
    return "-" if code is None else str(code)


class WebhooksScreen(ResourceScreen):
    """Webhooks with their last delivery; the cursor's webhook's deliveries below."""

    TITLE = "webhooks"
    INTERVAL = 2.0

    def compose_body(self) -> ComposeResult:
        yield DataTable(id="webhooks", cursor_type="row")
        yield DataTable(id="deliveries", cursor_type="row")

    def on_mount(self) -> None:
        """Columns, then polling."""
        self.query_one("#webhooks", DataTable).add_columns(
            "ACCOUNT", "URL", "ACTIVE", "FAILS", "LAST STATUS", "LAST CODE", "LAST AT")
        self.query_one("#deliveries", DataTable).add_columns(
            "TIME", "EVENT", "STATUS", "CODE", "MS", "ATTEMPT", "ERROR / RESPONSE")
        super().on_mount()

    async def load(self) -> Any:
        return await self.console.client.get("/webhooks")

    def render_data(self) -> None:
        rows = []
        for w in self.data["webhooks"]:
            last = w["deliveries"][0] if w["deliveries"] else {}
            active = (Text("yes", style="green") if w["active"] else
                      Text(f"no {w['disabled_reason']}".strip(), style="red"))
            rows.append((w["id"], [w["account_email"], w["url"][:60], active, w["failures"],
                                   _status(last.get("status")), _code(last.get("response_code")),
                                   _when(last.get("updated_at"))]))
        fill(self.query_one("#webhooks", DataTable), rows, self.filter_text)
        self._deliveries()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """The delivery table follows the cursor in the webhook table."""
        if event.data_table.id == "webhooks":
            self._deliveries()

    def _deliveries(self) -> None:
        key = selected_key(self.query_one("#webhooks", DataTable))
        hook = next((w for w in (self.data or {}).get("webhooks", []) if w["id"] == key), None)
        rows = [(str(d["id"]), [_when(d["updated_at"]), d["event_type"], _status(d["status"]),
                                _code(d["response_code"]),
                                "-" if d["duration_ms"] is None else d["duration_ms"],
                                d["attempts"], (d["error"] or d["response_body"])[:50]])
                for d in (hook or {}).get("deliveries", [])]
        # The filter narrows the webhook list; the log shows the chosen one whole.
        fill(self.query_one("#deliveries", DataTable), rows, "")
