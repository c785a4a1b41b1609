"""Who is calling the v1-pro API, and may they: key, rate window, plan, scope.

The checks run in the document's order, each with its own code: the API
switched off (503 feature_disabled), no or malformed ``Authorization``
(401 missing_auth), an unknown or revoked key (401 invalid_key), an expired
one (401 expired_key); then the request is counted in the key's 60-second
window, cluster-wide (429 rate_limited past the limit); then the account
must be active (403 account_unavailable) and on a paid plan (403
premium_required: "Pro" is any plan but ``free``), and the key must hold
the endpoint's scope (403 insufficient_scope).  Every answer after the key
is known carries the ``X-RateLimit-*`` headers.
"""

from __future__ import annotations

from dataclasses import dataclass

from quart import request

from protocols.rest.v1pro.errors import ProError
from storage.accounts import AccountInfo
from storage.api_keys import PREFIX, ApiKeyInfo, ApiKeyService
from storage.rate_windows import Limit, RateWindows, WindowState

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Caller:
    """An admitted request: its key, the key's account and rate window."""

    key: ApiKeyInfo
    account: AccountInfo
    window: WindowState


def rate_headers(state: WindowState) -> dict[str, str]:
    """The document's three headers."""
    return {"X-RateLimit-Limit": str(state.limit),
            "X-RateLimit-Remaining": str(state.remaining),
            "X-RateLimit-Reset": str(state.reset)}


def bearer_key() -> str:
    """The Bearer token of the request; 401 missing_auth if there is none."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise ProError(401, "missing_auth",
                       "Send your key as 'Authorization: Bearer csb_live_...'.")
    return token


def is_pro_request() -> bool:
    """Whether the request carries a ``csb_live_`` key (selects this dialect
    on paths it shares with the Simple REST API)."""
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    return scheme.lower() == "bearer" and token.strip().startswith(PREFIX)


class Gate:
    """Admits v1-pro requests."""

    def __init__(self, keys: ApiKeyService, windows: RateWindows, *, enabled: bool,
                 per_minute: int) -> None:
        self._keys = keys
        self._windows = windows
        self._enabled = enabled
        self._limit = Limit(per_minute, WINDOW_SECONDS)

    async def admit(self, scope: str | None) -> tuple[Caller, dict[str, str]]:
        """The caller and its rate headers, or the ProError to answer."""
        if not self._enabled:
            raise ProError(503, "feature_disabled", "The API is turned off on this cluster.")
        found = await self._keys.resolve(bearer_key())
        if found is None:
            raise ProError(401, "invalid_key", "This API key is unknown or has been revoked.")
        key, account = found
        if key.expired():
            raise ProError(401, "expired_key", "This API key has expired.")
        decision = await self._windows.hit(f"v1pro:{key.id}", [self._limit])
        state = decision.states[0]
        headers = rate_headers(state)
        if not decision.allowed:
            raise ProError(429, "rate_limited",
                           f"This key is limited to {state.limit} requests per minute.",
                           {**headers, "Retry-After": str(state.retry_after())})
        if account.status != "active":
            raise ProError(403, "account_unavailable", "This account is not available.",
                           headers)
        if account.plan == "free":
            raise ProError(403, "premium_required", "API access requires a Pro account.",
                           headers)
        if scope is not None and scope not in key.scopes:
            raise ProError(403, "insufficient_scope",
                           f"This API key is missing the '{scope}' scope.", headers)
        return Caller(key, account, state), headers
