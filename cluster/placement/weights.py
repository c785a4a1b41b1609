"""Placement weights: rendezvous scores and proportional apportionment of replica slots.

Both are deterministic (BLAKE2b + splitmix64, exact fractions) so a layout computation does
not depend on the process or Python's hash seed.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from fractions import Fraction

from cluster.placement.model import LayoutError, NodeSpec

_MASK64 = (1 << 64) - 1


def rendezvous_scores(num_partitions: int, nodes: Sequence[NodeSpec]) -> list[list[float]]:
    """Weighted rendezvous (highest random weight) scores, ``[partition][node]``.

    ``-w / ln(u)`` with ``u`` uniform in (0, 1) makes a node's chance of ranking first
    proportional to its weight (capacity), and a node's capacity only changes its own
    scores. ``u`` comes from BLAKE2b of the node id mixed with the partition number by the
    splitmix64 finaliser: stable across processes and much cheaper than one hash per pair.
    """
    seeds = [
        int.from_bytes(hashlib.blake2b(n.id.encode(), digest_size=8).digest(), "big") for n in nodes
    ]
    weights = [float(n.capacity) for n in nodes]
    log = math.log
    scores = []
    for p in range(num_partitions):
        salt = ((p + 1) * 0x9E3779B97F4A7C15) & _MASK64
        row = []
        for seed, weight in zip(seeds, weights, strict=True):
            z = seed ^ salt
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
            z ^= z >> 31
            row.append(-weight / log((z + 0.5) / 18446744073709551616.0))
        scores.append(row)
    return scores


def apportion(
    total: int, weights: Sequence[int], lo: Sequence[int], hi: Sequence[int]
) -> list[int]:
    """Split ``total`` into integers proportional to ``weights`` within ``[lo, hi]``.

    Exact water-filling: find ``lam`` with ``sum(clamp(lam * w, lo, hi)) == total`` (the sum
    is piecewise linear and non-decreasing in ``lam``), then round with largest remainders
    (ties to the lower index, i.e. the smaller node id / zone name). Weights must be > 0.
    """
    n = len(weights)
    if not sum(lo) <= total <= sum(hi):
        raise LayoutError("internal error: replica targets out of bounds")
    if total == sum(lo):
        return list(lo)

    def clamped(lam: Fraction) -> list[Fraction]:
        return [min(max(lam * weights[i], Fraction(lo[i])), Fraction(hi[i])) for i in range(n)]

    breakpoints = sorted(
        {Fraction(lo[i], weights[i]) for i in range(n)}
        | {Fraction(hi[i], weights[i]) for i in range(n)}
    )
    left = Fraction(0)
    right = breakpoints[-1]
    for bp in breakpoints:
        if sum(clamped(bp)) >= total:
            right = bp
            break
        left = bp
    # Between two breakpoints the clamp pattern is fixed: solve the linear equation.
    mid = (left + right) / 2
    fixed = Fraction(0)
    free_weight = 0
    for i in range(n):
        v = mid * weights[i]
        if v <= lo[i]:
            fixed += lo[i]
        elif v >= hi[i]:
            fixed += hi[i]
        else:
            free_weight += weights[i]
    lam = (total - fixed) / free_weight if free_weight else right
    exact = clamped(lam)
    result = [math.floor(x) for x in exact]
    missing = total - sum(result)
    by_remainder = sorted(range(n), key=lambda i: (-(exact[i] - result[i]), i))
    for i in by_remainder[:missing]:
        result[i] += 1
    return result
