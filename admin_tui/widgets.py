"""Small building blocks of the console: formatting, modal prompts, help."""

from __future__ import annotations

import time
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

HELP_TEXT = """\
[b]Commands[/b]  (press [b]:[/b], type a name, Enter — or ctrl+p for the palette)
  :overview  :nodes  :layout  :workers  :accounts  :keys  :trace  :webhooks  :quit

[b]Everywhere[/b]
  /  filter the table            esc  back / close             ?  this help
  ctrl+p  command palette        ctrl+c / :quit  leave

[b]Nodes[/b]      enter  drill into a node
[b]Layout[/b]     a  apply the staged layout    r  revert it    s  stage a change
[b]Workers[/b]    p  pause    r  resume    t  run now
[b]Accounts[/b]   enter  buckets    o  cycle sort    e  edit quota    n  edit plan
             u  suspend / reactivate
[b]Keys[/b]       d  revoke the selected key
[b]Trace[/b]      space  pause    c  clear    enter  details
             filter: status:5xx proto:s3 account:bob min:100 bucket:b  (plus free text)

Changes need a console started with [b]--write[/b]; destructive ones ask first.
"""


def human_bytes(n: int | float | None) -> str:
    """``1536`` -> ``1.5 KiB``; None -> ``-``."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"  # pragma: no cover


def bar(percent: float | None, width: int = 16) -> str:
    """A text progress bar: ``████████░░░░ 66.0%``."""
    if percent is None:
        return "-"
    p = max(0.0, min(100.0, float(percent)))
    filled = round(width * p / 100)
    return "█" * filled + "░" * (width - filled) + f" {p:5.1f}%"


def duration(seconds: float | None) -> str:
    """``3725`` -> ``1h02m``; None -> ``-``."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def clock(epoch: float) -> str:
    """Local wall-clock time with milliseconds."""
    return time.strftime("%H:%M:%S", time.localtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}"


def matches(text: str, row: list[Any]) -> bool:
    """Case-insensitive substring filter over a row's cells."""
    if not text:
        return True
    needle = text.lower()
    return any(needle in str(cell).lower() for cell in row)


class ConfirmScreen(ModalScreen[bool]):
    """Ask before a destructive action: ``y`` confirms, ``n``/``esc`` cancels."""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n", "answer(False)", "No"),
                Binding("escape", "answer(False)", "Cancel")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.question, id="question")
            yield Label("[b]y[/b] confirm    [b]n[/b] / esc cancel")

    def action_answer(self, value: bool) -> None:
        """Close with ``value``."""
        self.dismiss(value)


class PromptScreen(ModalScreen[str | None]):
    """Ask for one line of text (Enter submits, esc cancels)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.question, self.value, self.placeholder = question, value, placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.question)
            yield Input(self.value, placeholder=self.placeholder, id="answer")

    def on_mount(self) -> None:
        """Focus the answer with the suggestion selected: typing replaces it."""
        answer = self.query_one("#answer", Input)
        answer.focus()
        answer.select_all()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter: answer."""
        event.stop()
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        """Esc: no answer."""
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """Keys and commands."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("question_mark", "close", "Close"),
                Binding("q", "close", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(HELP_TEXT, id="help")

    def action_close(self) -> None:
        """Back to where we were."""
        self.dismiss(None)
