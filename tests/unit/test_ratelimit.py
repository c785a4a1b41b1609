"""The rate limiter's share of a cluster-wide limit (storage/ratelimit.py)."""

from __future__ import annotations

from storage.ratelimit import NodeCount, RateLimiter


def _admitted(limiter: RateLimiter, key: str, tries: int) -> int:
    return sum(limiter.hit(key) == 0 for _ in range(tries))


def test_each_node_admits_its_share_and_rebalances() -> None:
    up = [3]
    limiter = RateLimiter(30, 3600.0, nodes=lambda: up[0])  # refill is negligible here
    assert _admitted(limiter, "a", 100) == 10  # a third of the limit
    up[0] = 1  # two nodes left: this one takes the whole limit, refilling from now
    assert limiter.blocked("a") > 0
    assert _admitted(limiter, "b", 100) == 30
    up[0] = 2
    assert _admitted(limiter, "c", 100) == 15


def test_a_share_never_drops_below_one_event() -> None:
    limiter = RateLimiter(2, 3600.0, nodes=lambda: 5)
    assert _admitted(limiter, "a", 10) == 1


def test_the_node_count_defaults_to_one_and_survives_a_failing_view() -> None:
    count = NodeCount()
    assert count() == 1
    count.use(lambda: 0)
    assert count() == 1

    def broken() -> int:
        raise RuntimeError("view being rebuilt")

    count.use(broken)
    assert count() == 1
