"""The node's shared token buckets (storage/shared_buckets.py) with real
processes: the share of a node holds across its worker processes."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from storage.mapped_table import Attachment
from storage.ratelimit import RateLimiter
from storage.shared_buckets import PROBES, SLOTS, SharedBuckets, key_hash
from storage.shared_inflight import SharedInflight


def _spend(path: str, tries: int, out: multiprocessing.Queue) -> None:
    table: Attachment[SharedBuckets] = Attachment()
    table.attach(SharedBuckets(path))
    limiter = RateLimiter(10, 60.0, name="test", shared=table)
    out.put(sum(1 for _ in range(tries) if limiter.hit("alice") == 0))


def test_processes_share_one_budget(tmp_path: Path) -> None:
    path = str(tmp_path / "rate.table")
    SharedBuckets(path).close()  # as the primary makes it before its workers start
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_spend, args=(path, 8, out)) for _ in range(3)]
    for p in procs:
        p.start()
    admitted = sum(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    # 24 tries at 10 a minute: the burst of 10, plus what refills while they run.
    assert admitted == 10 or (10 < admitted <= 11)


def test_limiters_and_keys_are_separate(tmp_path: Path) -> None:
    table: Attachment[SharedBuckets] = Attachment()
    table.attach(SharedBuckets(str(tmp_path / "rate.table")))
    try:
        a = RateLimiter(1, 60.0, name="a", shared=table)
        b = RateLimiter(1, 60.0, name="b", shared=table)
        assert a.hit("k") == 0 and a.hit("k") > 0  # a's budget of k is spent
        assert b.hit("k") == 0 and a.hit("other") == 0  # b's, and another key's, are not
        assert a.blocked("k") > 0 and a.blocked("other") > 0
        a.reset("k")
        assert a.blocked("k") == 0 and a.hit("k") == 0
    finally:
        table.detach()


def test_refill_and_wait(tmp_path: Path) -> None:
    buckets = SharedBuckets(str(tmp_path / "rate.table"))
    try:
        h = key_hash("x", "y")
        assert buckets.take(h, 2.0, 2.0, 100.0) == 0
        wait = buckets.take(h, 1.0, 2.0, 100.0)
        assert 0 < wait <= 0.01
        deadline = time.monotonic() + 5
        while buckets.take(h, 1.0, 2.0, 100.0) > 0:
            assert time.monotonic() < deadline
    finally:
        buckets.close()


def test_a_crowded_probe_run_takes_over_the_idle_bucket(tmp_path: Path) -> None:
    buckets = SharedBuckets(str(tmp_path / "rate.table"))
    try:
        # PROBES + 1 hashes that all start at slot 5: the first PROBES fill its run.
        same = [5 + SLOTS * i for i in range(1, PROBES + 2)]
        for h in same[:PROBES]:
            assert buckets.take(h, 1.0, 1.0, 0.001) == 0  # spent: full again in ~1000 s
        buckets.take(same[1], 0.0, 1.0, 1000.0)  # this one refills at once: idle soonest
        # The newcomer takes over the idle bucket, never a busy one.
        assert buckets.take(same[PROBES], 1.0, 1.0, 0.001) == 0
        assert all(buckets.take(h, 1.0, 1.0, 0.001) > 0 for h in [same[0], *same[2:PROBES]])
    finally:
        buckets.close()


def test_in_flight_counts_are_the_nodes(tmp_path: Path) -> None:
    """Two processes' counters sum to the node's; a process restarted under
    the same index drops what its predecessor left counted."""
    path = str(tmp_path / "inflight.table")
    first, second = SharedInflight(path, 0, 2), SharedInflight(path, 1, 2)
    try:
        assert first.acquire("acct", 3) and second.acquire("acct", 3)
        assert first.acquire("acct", 3) and not second.acquire("acct", 3)
        assert second.in_flight("acct") == 3 and first.acquire("other", 3)
        first.release("acct")
        assert second.acquire("acct", 3)
        restarted = SharedInflight(path, 0, 2)  # first died holding one of acct
        restarted.claim()
        assert restarted.in_flight("acct") == 2 and restarted.in_flight("other") == 0
        restarted.close()
    finally:
        first.close()
        second.close()


def test_a_forgotten_bucket_leaves_later_keys_findable(tmp_path: Path) -> None:
    buckets = SharedBuckets(str(tmp_path / "rate.table"))
    try:
        a, b = 7 + SLOTS, 7 + 2 * SLOTS  # b sits after a in one probe run
        buckets.take(a, 1.0, 1.0, 0.001)
        buckets.take(b, 1.0, 1.0, 0.001)
        buckets.forget(a)
        assert buckets.take(b, 1.0, 1.0, 0.001) > 0  # still b's spent bucket
    finally:
        buckets.close()
