"""Node-wide locks (storage/node_locks.py) across real processes."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest
import trio

from storage.node_locks import NodeLocks


def _hold(directory: str, name: str, log: str) -> None:
    async def main() -> None:
        locks = NodeLocks()
        locks.attach(directory)
        async with locks.hold(name):
            with open(log, "a") as f:
                f.write(f"in {os.getpid()}\n")
            await trio.sleep(0.2)  # the critical section: its length is the test
            with open(log, "a") as f:
                f.write(f"out {os.getpid()}\n")
        locks.detach()

    trio.run(main)


def test_one_process_at_a_time(tmp_path: Path) -> None:
    log = tmp_path / "log"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_hold, args=(str(tmp_path / "locks"), "img:abc", str(log)))
             for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    lines = log.read_text().split()
    # in/out pairs never interleave: each "in" is followed by its own "out".
    pairs = [lines[i:i + 4] for i in range(0, len(lines), 4)]
    assert len(pairs) == 3 and all(p[0] == "in" and p[2] == "out" and p[1] == p[3]
                                   for p in pairs)


@pytest.mark.trio
async def test_unattached_and_in_process_tasks(tmp_path: Path) -> None:
    locks = NodeLocks()
    async with locks.hold("x"):  # a node of one process: nothing to take
        pass
    inside = 0
    most = 0

    async def worker() -> None:
        nonlocal inside, most
        async with locks.hold("same"):
            inside += 1
            most = max(most, inside)
            await trio.sleep(0.01)
            inside -= 1

    locks.attach(str(tmp_path / "locks"))
    try:
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(worker)
    finally:
        locks.detach()
    assert most == 1
