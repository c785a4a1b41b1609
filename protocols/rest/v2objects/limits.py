"""v2-objects rate limits: per account and plan, counted cluster-wide.

The document's table: Free 60 requests a minute and 10,000 a day, Pro 600
and 100,000, Enterprise unlimited.  Plans map by name: ``free`` is Free,
``enterprise`` is Enterprise, any other paid plan is Pro.  The headers
describe the per-minute window (the one the document's example shows); the
daily window refuses with the same 429 when it is the one that is full.
Enterprise accounts are not counted and get no rate-limit headers.
"""

from __future__ import annotations

from storage.rate_windows import Decision, Limit, RateWindows

MINUTE, DAY = 60, 86400
# Daily windows slide by the hour: 24 rows per account, not 86,400.
_PLANS: dict[str, tuple[Limit, ...]] = {
    "free": (Limit(60, MINUTE), Limit(10_000, DAY, 3600)),
    "pro": (Limit(600, MINUTE), Limit(100_000, DAY, 3600)),
}


def limits_for(plan: str) -> tuple[Limit, ...]:
    """The windows of ``plan`` (empty: unlimited)."""
    if plan == "enterprise":
        return ()
    return _PLANS["free"] if plan == "free" else _PLANS["pro"]


async def hit(windows: RateWindows, account_id: str, plan: str) -> Decision | None:
    """Count one request of the account; None when its plan is unlimited."""
    limits = limits_for(plan)
    if not limits:
        return None
    return await windows.hit(f"v2objects:{account_id}", limits)


def headers(decision: Decision) -> dict[str, str]:
    """``X-RateLimit-*`` of the per-minute window."""
    minute = decision.states[0]
    return {"X-RateLimit-Limit": str(minute.limit),
            "X-RateLimit-Remaining": str(minute.remaining),
            "X-RateLimit-Reset": str(minute.reset)}
