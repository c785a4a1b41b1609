"""storage/concurrency.py: each node admits its share of a key's limit of
requests in flight, and every slot comes back exactly once."""

from __future__ import annotations

import gc

from storage.concurrency import ConcurrencyLimiter


def test_share_follows_the_node_count() -> None:
    nodes = [1]
    limiter = ConcurrencyLimiter(lambda: nodes[0])
    assert limiter.share(5) == 5
    nodes[0] = 2
    assert limiter.share(5) == 3  # ceil: at most limit + nodes - 1 cluster-wide
    nodes[0] = 10
    assert limiter.share(5) == 1  # never none
    nodes[0] = 0
    assert limiter.share(5) == 5  # a view being rebuilt counts as one node


def test_slots_per_key_and_release_once() -> None:
    limiter = ConcurrencyLimiter(lambda: 1)
    a1, a2 = limiter.acquire("a", 2), limiter.acquire("a", 2)
    assert a1 is not None and a2 is not None
    assert limiter.acquire("a", 2) is None and limiter.in_flight("a") == 2
    assert limiter.acquire("b", 2) is not None  # keys are independent
    a1.release()
    a1.release()  # a second release gives nothing back twice
    assert limiter.in_flight("a") == 1
    again = limiter.acquire("a", 2)
    assert again is not None and limiter.acquire("a", 2) is None


def test_a_dropped_slot_is_released() -> None:
    limiter = ConcurrencyLimiter(lambda: 1)
    slot = limiter.acquire("k", 1)
    assert slot is not None and limiter.acquire("k", 1) is None
    del slot
    gc.collect()
    assert limiter.in_flight("k") == 0 and limiter.acquire("k", 1) is not None
