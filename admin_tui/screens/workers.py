"""Workers screen: repair/scrub/GC/rebalance progress; pause, resume."""

from __future__ import annotations

import time
from collections import deque
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable

from admin_tui.screens.base import ResourceScreen, fill, selected_key
from admin_tui.widgets import bar, duration, human_bytes


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
