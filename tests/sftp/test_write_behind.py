"""The upload write-behind of :class:`protocols.sftp.handles.WriteHandle`.

A scheduling race, so driven deterministically on a bare asyncio loop: the
trio side is replaced by a bridge whose hand-offs are already complete when
they are returned, their done callbacks still queued on the loop.  That is
what a fast trio side produces at random under load, and what once made a
write spin forever without yielding (a hung upload, a core at 100 %).
"""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

from protocols.sftp.handles import QUEUED_BLOCKS, WriteHandle

BLOCK = 64 * 1024


class _DoneBridge:
    """Every call "ran" at once: its future is done, its callbacks pending."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def call_trio_soon(self, fn: Any, *args: Any) -> Any:
        self.calls.append((fn.__name__, args))
        fut = asyncio.get_running_loop().create_future()
        if fn.__name__ == "_send_all":
            fut.set_result(None)
        return fut  # the upload itself stays pending


def _handle(bridge: _DoneBridge) -> WriteHandle:
    services = SimpleNamespace(settings=SimpleNamespace(sftp=SimpleNamespace(reorder_window=0)),
                               objects=SimpleNamespace(chunk_size=BLOCK))

    async def upload(*args: Any) -> None:
        raise AssertionError("not run: the bridge is a stand-in")

    server = SimpleNamespace(services=services, bridge=bridge, ops=SimpleNamespace(upload=upload))
    return WriteHandle(server, SimpleNamespace(), "key")  # type: ignore[arg-type]


def test_writes_never_spin_on_a_hand_off_already_done() -> None:
    bridge = _DoneBridge()
    blocks = QUEUED_BLOCKS + 3
    result: list[int] = []

    async def main() -> None:
        handle = _handle(bridge)
        for i in range(blocks):
            result.append(await handle.write(i * BLOCK, bytes([i]) * BLOCK))

    # A spinning write never yields, so no asyncio timeout could stop it:
    # run the loop in a thread and give up on it after a deadline.
    runner = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    runner.start()
    runner.join(timeout=20)
    assert not runner.is_alive(), "a write spun waiting for a finished hand-off"
    assert result == [BLOCK] * blocks
    # Every block was handed over once, in order.
    sent = [b for name, args in bridge.calls if name == "_send_all" for b in args[1]]
    assert [b[0] for b in sent] == list(range(len(sent)))
    assert len(sent) >= blocks - QUEUED_BLOCKS
