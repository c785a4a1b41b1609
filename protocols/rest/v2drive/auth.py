"""Who is calling v2-drive, and may they: key or OAuth token, rate, scope.

The checks, in order: a Bearer credential (401 authentication_required),
a known key (401 invalid_api_key) or OAuth access token (401
invalid_token), then the request counts in the account's windows,
cluster-wide: the plan's requests per minute and its burst per second (429
rate_limit_exceeded with ``Retry-After``); then the account must be active
(403 forbidden) and the credential must hold the endpoint's scope (403
insufficient_scope; a ``cs_live_pk_`` key asked to write: 403 forbidden).
Every answer after the caller is known carries ``X-RateLimit-Limit``,
``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``.  Then :meth:`Gate.hold`
takes one of the account's concurrent-request slots (the "Concurrent"
column, ``[v2drive] concurrent_*``; each node admits its share, see
storage/concurrency.py): past it, 429 rate_limit_exceeded with
``Retry-After: 1``.  The slot is held until the response's last byte is
sent (a download counts while it streams).

Plans: the cluster's plans map onto the document's table: ``free`` is
Free, ``1tb``/``5tb`` (and any other paid plan) Pro, ``10tb`` and above
Business.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from quart import request

from protocols.rest.v2drive.errors import DriveError, forbidden, invalid
from storage.accounts import AccountInfo
from storage.concurrency import ConcurrencyLimiter, Slot
from storage.drive_keys import PREFIXES, DriveKeyService
from storage.rate_windows import Limit, RateWindows, WindowState

# (requests per minute, burst per second) of each tier.
TIERS = {"free": (60, 10), "pro": (600, 50), "business": (3000, 200)}
# Requests in flight at once of each tier (configurable: [v2drive] concurrent_*).
CONCURRENT = {"free": 5, "pro": 20, "business": 50}
BUSINESS_PLANS = frozenset({"10tb", "25tb", "50tb", "business", "enterprise"})
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# Resolves an OAuth access token to (account, scopes), or None.
TokenResolver = Callable[[str], Awaitable[tuple[AccountInfo, tuple[str, ...]] | None]]


def tier(plan: str) -> str:
    """The document's plan name of a cluster plan."""
    if plan == "free":
        return "free"
    return "business" if plan in BUSINESS_PLANS else "pro"


@dataclass(frozen=True)
class Caller:
    """An admitted request."""

    account: AccountInfo
    scopes: tuple[str, ...]
    sandbox: bool  # a cs_test_sk_ key: the sandbox folder only
    public: bool  # a cs_live_pk_ key: read-only
    credential_id: str  # the key's id or the OAuth token's id


def rate_headers(state: WindowState) -> dict[str, str]:
    """The document's rate-limit headers."""
    return {"X-RateLimit-Limit": str(state.limit),
            "X-RateLimit-Remaining": str(state.remaining),
            "X-RateLimit-Reset": str(state.reset)}


def bearer() -> str:
    """The Bearer credential of the request; 401 authentication_required without one."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise DriveError(401, "authentication_required",
                         "Send your API key as 'Authorization: Bearer cs_live_sk_...'.")
    return token


class Gate:
    """Admits v2-drive requests."""

    def __init__(self, keys: DriveKeyService, windows: RateWindows,
                 tokens: TokenResolver | None = None,
                 concurrent: Mapping[str, int] | None = None) -> None:
        self._keys = keys
        self._windows = windows
        self.tokens = tokens
        # Requests in flight per account, by tier (the document's table by default).
        self._concurrent = dict(concurrent or CONCURRENT)
        self._in_flight = ConcurrencyLimiter()

    async def _identify(self, token: str) -> Caller:
        if token.startswith(tuple(PREFIXES)):
            found = await self._keys.resolve(token)
            if found is None:
                raise DriveError(401, "invalid_api_key",
                                 "This API key is unknown or has been revoked.")
            key, account = found
            return Caller(account, key.scopes, key.sandbox, key.kind == "pk", key.id)
        resolved = await self.tokens(token) if self.tokens is not None else None
        if resolved is None:
            raise DriveError(401, "invalid_token",
                             "This access token is unknown, expired or revoked.")
        account, scopes = resolved
        return Caller(account, scopes, False, False, "oauth")

    async def admit(self, scope: str | None) -> tuple[Caller, dict[str, str]]:
        """The caller and its rate headers, or the DriveError to answer."""
        version = request.headers.get("X-Cloudy-Version")
        if version is not None and not _VERSION.match(version.strip()):
            raise invalid("X-Cloudy-Version must be a date such as 2024-08-15.")
        caller = await self._identify(bearer())
        per_minute, burst = TIERS[tier(caller.account.plan)]
        decision = await self._windows.hit(f"v2drive:{caller.account.id}",
                                           [Limit(per_minute, 60), Limit(burst, 1)])
        headers = rate_headers(decision.states[0])
        if not decision.allowed:
            refused = decision.refused_by or decision.states[0]
            raise DriveError(429, "rate_limit_exceeded",
                             f"Rate limit exceeded: {refused.limit} requests per "
                             f"{refused.window} s on your plan. Retry after a delay.",
                             {**headers, "Retry-After": str(refused.retry_after())})
        if caller.account.status != "active":
            raise DriveError(403, "forbidden", "This account is suspended.", headers)
        if scope is not None and scope not in caller.scopes:
            if caller.public:
                raise DriveError(403, "forbidden", "Public keys (cs_live_pk_) are read-only.",
                                 headers)
            raise DriveError(403, "insufficient_scope",
                             f"This credential is missing the '{scope}' scope.", headers)
        return caller, headers

    def hold(self, caller: Caller, headers: Mapping[str, str]) -> Slot:
        """One of the caller's concurrent-request slots; 429 when all are taken."""
        limit = self._concurrent[tier(caller.account.plan)]
        slot = self._in_flight.acquire(f"v2drive:{caller.account.id}", limit)
        if slot is None:
            raise DriveError(429, "rate_limit_exceeded",
                             f"Too many concurrent requests: at most {limit} at once on your "
                             "plan. Retry after a delay.", {**headers, "Retry-After": "1"})
        return slot


def require_business(caller: Caller) -> None:
    """403 plan_upgrade_required outside the Business and Enterprise plans."""
    if tier(caller.account.plan) != "business":
        raise DriveError(403, "plan_upgrade_required",
                         "Audit logs are available on Business and Enterprise plans.")


__all__ = ["Caller", "Gate", "forbidden", "require_business", "tier"]
