"""Account screens: the account list, one account's detail, and access keys."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from admin_tui.screens.base import ResourceScreen, fill, selected_key
from admin_tui.widgets import ConfirmScreen, PromptScreen, human_bytes

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
