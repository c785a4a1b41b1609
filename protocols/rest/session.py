"""The dashboard session as every session-authenticated endpoint checks it.

One cookie, one check (401 without a live session) and one per-account
request limit (``accounts.dashboard_requests_per_minute``) shared by every
dashboard endpoint of the node: the web app builds a single
:class:`SessionGate` and hands it to each blueprint that needs a session.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from quart import request

from protocols.rest.common import ApiError, check_rate, from_storage
from storage import errors, events
from storage.accounts import AccountInfo
from storage.core import StorageCore
from storage.ratelimit import RateLimiter
from storage.sessions import SessionService

#: The dashboard session's cookie.
COOKIE = "session"

Handler = Callable[..., Awaitable[Any]]


async def from_dashboard() -> None:
    """A ``before_request`` hook: the changes the request makes are the
    dashboard's (storage.events).  Async, so it runs in the request's task."""
    events.set_origin("dashboard")


async def session_account(sessions: SessionService) -> AccountInfo | None:
    """The account of the request's session cookie, or None (no cookie, or
    a session that expired or was revoked)."""
    token = request.cookies.get(COOKIE, "")
    return await sessions.resolve(token) if token else None


class SessionGate:
    """The session check of the dashboard API (see the module docstring)."""

    def __init__(self, core: StorageCore) -> None:
        self._sessions = core.sessions
        self._per_account = RateLimiter(core.settings.accounts.dashboard_requests_per_minute,
                                        60.0)

    async def account(self) -> AccountInfo:
        """The session's account: 401 without one, 429 over the limit."""
        account = await session_account(self._sessions)
        if account is None:
            raise ApiError(401, "Unauthorized", "Log in first: this needs a session cookie.")
        check_rate(self._per_account, account.id)
        return account

    def required(self, fn: Handler) -> Handler:
        """Decorate a handler to receive the session's account first; storage
        errors it raises are answered in the dashboard's JSON format."""

        @wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            account = await self.account()
            try:
                return await fn(account, *args, **kwargs)
            except errors.StorageError as exc:
                raise from_storage(exc) from None

        return wrapper
